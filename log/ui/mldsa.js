// ML-DSA-44 verification in the browser: not implemented yet, so ML-DSA-44
// cosignatures are shown as "not checked in the browser".
"use strict";
export const mldsa44Verify = null;

-- Schema of the Evident SQLite storage for Trillian log trees.
--
-- The schema version is kept in PRAGMA user_version and the file is marked
-- with PRAGMA application_id; both are set by Open (schema.go), not here.
-- Every statement below runs inside one transaction when a file is new.

-- One row per tree: the admin data of Trillian's trillian.Tree message.
-- Enums are stored by name; times are Unix nanoseconds.
CREATE TABLE trees (
  tree_id                  INTEGER PRIMARY KEY,
  tree_state               TEXT    NOT NULL,
  tree_type                TEXT    NOT NULL,
  display_name             TEXT    NOT NULL,
  description              TEXT    NOT NULL,
  create_time_nanos        INTEGER NOT NULL,
  update_time_nanos        INTEGER NOT NULL,
  max_root_duration_nanos  INTEGER NOT NULL,
  deleted                  INTEGER NOT NULL DEFAULT 0,
  delete_time_nanos        INTEGER
) STRICT;

-- Signed tree heads, one per write revision. The latest head of a tree is
-- the one with the highest revision.
CREATE TABLE tree_heads (
  tree_id          INTEGER NOT NULL,
  revision         INTEGER NOT NULL,
  timestamp_nanos  INTEGER NOT NULL,
  tree_size        INTEGER NOT NULL,
  root_hash        BLOB    NOT NULL,
  PRIMARY KEY (tree_id, revision)
) STRICT, WITHOUT ROWID;

-- Merkle tree tiles (Trillian's storagepb.SubtreeProto, marshalled, as
-- Trillian's storage/cache writes them; nodes.go). One row per tile,
-- updated in place; a partial bottom tile (its leaves are the tree's) is
-- not stored but made from the leaves' Merkle hashes when needed.
CREATE TABLE subtrees (
  tree_id     INTEGER NOT NULL,
  subtree_id  BLOB    NOT NULL,
  nodes       BLOB    NOT NULL,
  PRIMARY KEY (tree_id, subtree_id)
) STRICT;

-- Every leaf ever accepted, queued or sequenced. The identity hash is
-- unique per tree: queueing the same identity twice is a duplicate. A leaf
-- gets its sequence number and integrate time when it is sequenced.
--
-- Write cost matters here: a random key (a hash) in an index costs about one
-- page write per leaf. So leaf_data has no index by identity hash: that is
-- leaf_identities below, written in sorted batches (identity.go). The Merkle
-- hash index holds only leaves whose identity hash differs from their Merkle
-- hash (Trillian's log server makes them equal unless the personality sets
-- an identity); lookups by Merkle hash use the identity index for the
-- others. The sequence index grows at its end.
CREATE TABLE leaf_data (
  tree_id                    INTEGER NOT NULL,
  leaf_identity_hash         BLOB    NOT NULL,
  merkle_leaf_hash           BLOB    NOT NULL,
  leaf_value                 BLOB    NOT NULL,
  extra_data                 BLOB,
  queue_timestamp_nanos      INTEGER NOT NULL,
  sequence_number            INTEGER,
  integrate_timestamp_nanos  INTEGER
) STRICT;
CREATE UNIQUE INDEX leaf_data_sequence ON leaf_data (tree_id, sequence_number)
  WHERE sequence_number IS NOT NULL;
CREATE INDEX leaf_data_merkle ON leaf_data (tree_id, merkle_leaf_hash)
  WHERE merkle_leaf_hash != leaf_identity_hash;

-- The queue: leaves waiting for the sequencer, in dequeue order. Queueing a
-- leaf adds it here (at the end, as queue times grow); sequencing it
-- removes it.
CREATE INDEX leaf_data_queue ON leaf_data (tree_id, queue_timestamp_nanos, leaf_identity_hash)
  WHERE sequence_number IS NULL;

-- The identity index: each leaf's row by (tree, identity hash), for the
-- leaves of leaf_data up to identity_merge.merged_rowid. The leaves written
-- since are indexed in memory (rebuilt at open from the rows above
-- merged_rowid) and moved here together, in key order, so that a page of
-- this index is written once for many leaves rather than once for each.
CREATE TABLE leaf_identities (
  tree_id             INTEGER NOT NULL,
  leaf_identity_hash  BLOB    NOT NULL,
  leaf_rowid          INTEGER NOT NULL,
  PRIMARY KEY (tree_id, leaf_identity_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE identity_merge (
  id            INTEGER PRIMARY KEY CHECK (id = 0),
  merged_rowid  INTEGER NOT NULL
) STRICT;
INSERT INTO identity_merge (id, merged_rowid) VALUES (0, 0);

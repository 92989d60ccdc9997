package storage

// schema returns the CREATE statements of Evident's own tables in dialect d.
// Column types differ between the engines; names and meanings do not.
func schema(d Dialect) []string {
	blob, hash, text, id := "BLOB", "BLOB", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT"
	if d == MySQL {
		blob, hash, text, id = "LONGBLOB", "BINARY(32)", "VARCHAR(255)", "BIGINT PRIMARY KEY AUTO_INCREMENT"
	}
	return append([]string{
		// settings: small named values a server keeps across restarts (for
		// example the Trillian tree ID of the log).
		`CREATE TABLE IF NOT EXISTS settings (
			name ` + text + ` NOT NULL PRIMARY KEY,
			value ` + blob + ` NOT NULL
		)`,
		// checkpoints: every checkpoint a log published, byte for byte as
		// signed (with its cosignatures). The primary key makes publishing a
		// second, different checkpoint of one size impossible.
		`CREATE TABLE IF NOT EXISTS checkpoints (
			origin ` + text + ` NOT NULL,
			size BIGINT NOT NULL,
			note ` + blob + ` NOT NULL,
			published_at BIGINT NOT NULL,
			PRIMARY KEY (origin, size)
		)`,
		// signed_checkpoints: every checkpoint a log signed and showed to
		// witnesses, published or not, recorded before any witness saw it.
		// A witness may hold one that was never published (its quorum
		// failed); the log then proves consistency from it. The primary key
		// makes signing two roots of one size impossible to record.
		`CREATE TABLE IF NOT EXISTS signed_checkpoints (
			origin ` + text + ` NOT NULL,
			size BIGINT NOT NULL,
			root ` + hash + ` NOT NULL,
			note ` + blob + ` NOT NULL,
			signed_at BIGINT NOT NULL,
			PRIMARY KEY (origin, size)
		)`,
		// write_tokens: SHA-256 hashes of the bearer tokens allowed to add
		// entries; the tokens themselves are never stored.
		`CREATE TABLE IF NOT EXISTS write_tokens (
			token_hash ` + hash + ` NOT NULL PRIMARY KEY,
			name ` + text + ` NOT NULL,
			created_at BIGINT NOT NULL
		)`,
		// witness_state: per log a witness follows, the latest checkpoint it
		// cosigned. Updated only by compare-and-swap on (origin, size).
		`CREATE TABLE IF NOT EXISTS witness_state (
			origin ` + text + ` NOT NULL PRIMARY KEY,
			size BIGINT NOT NULL,
			root ` + hash + ` NOT NULL,
			note ` + blob + ` NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
		// witness_evidence: pairs of validly signed checkpoints of one log that
		// cannot both be true, with the proof that failed, kept forever.
		`CREATE TABLE IF NOT EXISTS witness_evidence (
			id ` + id + `,
			origin ` + text + ` NOT NULL,
			held_note ` + blob + ` NOT NULL,
			new_note ` + blob + ` NOT NULL,
			proof ` + blob + ` NOT NULL,
			reason ` + blob + ` NOT NULL,
			found_at BIGINT NOT NULL
		)`,
	}, append(append(eventsSchema(d), tilesSchema(d)...), tenantsSchema(d)...)...)
}

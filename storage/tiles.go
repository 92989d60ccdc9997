package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// EntriesLevel is the level under which entry bundles are stored in the
// tiles table; hash tiles use their tlog-tiles level, 0 to 63.
const EntriesLevel = -1

// tilesSchema returns the CREATE statements of the tables of a log's
// tlog-tiles (https://c2sp.org/tlog-tiles), written by the log's tiler.
func tilesSchema(d Dialect) []string {
	blob, hash, text := "BLOB", "BLOB", "TEXT"
	if d == MySQL {
		blob, hash, text = "LONGBLOB", "BINARY(32)", "VARCHAR(255)"
	}
	return []string{
		// tiles: the hash tiles (level 0..63) and entry bundles (level
		// -1) of a log, each at the largest width tiled so far. A
		// narrower (partial) tile is a prefix of a wider one, so one row
		// serves every width; a full tile (width 256) never changes.
		`CREATE TABLE IF NOT EXISTS tiles (
			origin ` + text + ` NOT NULL,
			level SMALLINT NOT NULL,
			idx BIGINT NOT NULL,
			width INTEGER NOT NULL,
			data ` + blob + ` NOT NULL,
			PRIMARY KEY (origin, level, idx)
		)`,
		// tiled: per log, how far the tiler got and the root it computed
		// there. Updated only by compare-and-swap on (origin, size).
		`CREATE TABLE IF NOT EXISTS tiled (
			origin ` + text + ` NOT NULL PRIMARY KEY,
			size BIGINT NOT NULL,
			root ` + hash + ` NOT NULL
		)`,
		// tile_leaves: the index of each leaf hash the tiler saw first,
		// so that receipts by leaf hash need no call to Trillian.
		`CREATE TABLE IF NOT EXISTS tile_leaves (
			origin ` + text + ` NOT NULL,
			leaf_hash ` + hash + ` NOT NULL,
			idx BIGINT NOT NULL,
			PRIMARY KEY (origin, leaf_hash)
		)`,
	}
}

// Tile is one stored tile: a hash tile (Level 0..63) or an entry bundle
// (Level EntriesLevel) at index Index, holding Width hashes or entries.
type Tile struct {
	Level int
	Index uint64
	Width int
	Data  []byte
}

// TileUpdate is what one tiler step writes: the tiles it changed, the new
// leaves' indexes by leaf hash, and the tiled tree's new size and root.
type TileUpdate struct {
	Size   uint64
	Root   [32]byte
	Tiles  []Tile
	Leaves [][32]byte // the leaf hashes of [old size, Size), in order
	// NoLeafIndex skips storing Leaves in tile_leaves: the log finds a
	// leaf's index in Trillian's own index (in-process Trillian), so a
	// second index would only cost a random insert per entry.
	NoLeafIndex bool
}

// ErrTiledElsewhere is returned by PutTiles when the stored tiled size is
// not the one the caller extended: another server of the log tiled
// meanwhile. Nothing was written; reload the tiler's state and go on.
var ErrTiledElsewhere = errors.New("the log was tiled further by another server")

// TiledSize returns how far the log's tiles reach and the root there (0
// and a zero root before the first tile).
func (d *DB) TiledSize(ctx context.Context, origin string) (uint64, [32]byte, error) {
	var size int64
	var root []byte
	err := d.db.QueryRowContext(ctx, `SELECT size, root FROM tiled WHERE origin = ?`, origin).Scan(&size, &root)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, [32]byte{}, nil
	}
	if err != nil || len(root) != 32 {
		return 0, [32]byte{}, fmt.Errorf("reading the tiled size of %s: %v", origin, errOr(err, "bad root"))
	}
	return uint64(size), [32]byte(root), nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// PutTiles atomically stores u as the extension of the log's tiles from
// size old: all of it, or nothing (ErrTiledElsewhere when the stored size is
// not old).
func (d *DB) PutTiles(ctx context.Context, origin string, old uint64, u TileUpdate) error {
	if u.Size < old || u.Size-old != uint64(len(u.Leaves)) || u.Size > 1<<63-1 {
		return fmt.Errorf("storing tiles of %s: bad update from %d to %d with %d leaves", origin, old, u.Size, len(u.Leaves))
	}
	// On SQLite the tiles are committed without waiting for the disk
	// (d.tiles): the log's next durable commit (the checkpoint that needs
	// them, or its record as signed) carries them to the disk, as a WAL is
	// written and synced in order. A crash before it loses only tiles that
	// no checkpoint covers, together with the tiled size of the same
	// transaction, and the tiler extends again from the size stored.
	tx, err := d.tiles.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing tiles of %s: %w", origin, err)
	}
	defer tx.Rollback()
	var res sql.Result
	if old == 0 {
		res, err = tx.ExecContext(ctx, d.insertIgnore()+` INTO tiled (origin, size, root) VALUES (?, ?, ?)`, origin, int64(u.Size), u.Root[:])
	} else {
		// Compare-and-swap: two servers tiling one log never both extend
		// the same size, so no tile is written from a stale edge.
		var st *sql.Stmt
		if st, err = d.stmtOn(d.tiles, `UPDATE tiled SET size = ?, root = ? WHERE origin = ? AND size = ?`); err == nil {
			res, err = tx.StmtContext(ctx, st).ExecContext(ctx, int64(u.Size), u.Root[:], origin, int64(old))
		}
	}
	if err != nil {
		return fmt.Errorf("storing tiles of %s: %w", origin, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("storing tiles of %s: %w", origin, err)
	} else if n != 1 {
		return fmt.Errorf("storing tiles of %s from %d: %w", origin, old, ErrTiledElsewhere)
	}
	if err := d.putTileRows(ctx, tx, origin, u.Tiles); err != nil {
		return err
	}
	if !u.NoLeafIndex {
		if err := d.putLeafRows(ctx, tx, origin, old, u.Leaves); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing tiles of %s: %w", origin, err)
	}
	return nil
}

// rowsPerInsert bounds the rows of one multi-row INSERT.
const rowsPerInsert = 200

func (d *DB) putTileRows(ctx context.Context, tx *sql.Tx, origin string, tiles []Tile) error {
	upsert := ` ON CONFLICT (origin, level, idx) DO UPDATE SET width = excluded.width, data = excluded.data`
	if d.dialect == MySQL {
		upsert = ` ON DUPLICATE KEY UPDATE width = VALUES(width), data = VALUES(data)`
	}
	for len(tiles) > 0 {
		n := min(len(tiles), rowsPerInsert)
		args := make([]any, 0, 5*n)
		for _, t := range tiles[:n] {
			args = append(args, origin, t.Level, int64(t.Index), t.Width, t.Data)
		}
		q := `INSERT INTO tiles (origin, level, idx, width, data) VALUES ` + placeholders(n, 5) + upsert
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("storing tiles of %s: %w", origin, err)
		}
		tiles = tiles[n:]
	}
	return nil
}

func (d *DB) putLeafRows(ctx context.Context, tx *sql.Tx, origin string, first uint64, leaves [][32]byte) error {
	for i := 0; i < len(leaves); i += rowsPerInsert {
		n := min(len(leaves)-i, rowsPerInsert)
		args := make([]any, 0, 3*n)
		for j, h := range leaves[i : i+n] {
			args = append(args, origin, h[:], int64(first)+int64(i+j))
		}
		// A leaf hash seen before keeps its first index: that is the
		// entry's index, and later copies are duplicates.
		q := d.insertIgnore() + ` INTO tile_leaves (origin, leaf_hash, idx) VALUES ` + placeholders(n, 3)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("storing leaf indexes of %s: %w", origin, err)
		}
	}
	return nil
}

func (d *DB) insertIgnore() string {
	if d.dialect == MySQL {
		return "INSERT IGNORE"
	}
	return "INSERT OR IGNORE"
}

// placeholders returns "(?, ?), (?, ?)" for rows rows of cols columns.
func placeholders(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}

// GetTile returns the stored tile (level, index) at the largest width tiled,
// or ErrNotFound.
func (d *DB) GetTile(ctx context.Context, origin string, level int, index uint64) (*Tile, error) {
	if index > 1<<63-1 {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, ErrNotFound)
	}
	t := &Tile{Level: level, Index: index}
	err := d.db.QueryRowContext(ctx, `SELECT width, data FROM tiles WHERE origin = ? AND level = ? AND idx = ?`,
		origin, level, int64(index)).Scan(&t.Width, &t.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d of %s: %w", level, index, origin, err)
	}
	return t, nil
}

// LeafIndex returns the index of the first leaf with this hash that the
// tiler saw, or ErrNotFound.
func (d *DB) LeafIndex(ctx context.Context, origin string, leafHash [32]byte) (uint64, error) {
	var idx int64
	stmt, err := d.leafIndexStmt()
	if err != nil {
		return 0, fmt.Errorf("looking up leaf %x of %s: %w", leafHash, origin, err)
	}
	err = stmt.QueryRowContext(ctx, origin, leafHash[:]).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("leaf %x: %w", leafHash, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("looking up leaf %x of %s: %w", leafHash, origin, err)
	}
	return uint64(idx), nil
}

// HasCheckpointIn reports whether origin published a checkpoint with a size
// in [lo, hi).
func (d *DB) HasCheckpointIn(ctx context.Context, origin string, lo, hi uint64) (bool, error) {
	if lo > 1<<63-1 || hi <= lo {
		return false, nil
	}
	hi = min(hi, 1<<63-1)
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM checkpoints WHERE origin = ? AND size >= ? AND size < ? LIMIT 1) t`,
		origin, int64(lo), int64(hi)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("looking up checkpoints of %s: %w", origin, err)
	}
	return n > 0, nil
}

// leafIndexStmt returns the prepared statement of LeafIndex (the query of
// every receipt).
func (d *DB) leafIndexStmt() (*sql.Stmt, error) {
	return d.stmt(`SELECT idx FROM tile_leaves WHERE origin = ? AND leaf_hash = ?`)
}

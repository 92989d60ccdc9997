package backend

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/server"
	"github.com/google/trillian/server/admin"
	terrors "github.com/google/trillian/server/errors"
	tstorage "github.com/google/trillian/storage"
	"github.com/google/trillian/trees"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// logClient is a trillian.TrillianLogClient that calls Trillian's log server
// implementation in this process directly. Errors come out as they would
// from the gRPC server: wrapped as Trillian's ErrorWrapper interceptor does,
// and as gRPC statuses. Like Trillian's TrillianInterceptor, it puts the
// (cached) tree into the call's context, so that the server does not read
// it from storage on every call.
type logClient struct {
	s     *server.TrillianLogRPCServer
	trees *treeCache
	// queued is called after every call that may have stored leaves, to
	// wake the sequencer.
	queued func()
	// remember, when set, is given the answer of every successful
	// queueBatch to a LOG tree, before the sequencer is woken.
	remember func([]*trillian.QueuedLogLeaf)
	// storage is Trillian's log storage, for queueBatch.
	storage tstorage.LogStorage
	// appendLeaves, when the storage can, appends leaves at the end of a
	// PREORDERED_LOG tree, at positions it assigns in one durable
	// transaction, deduplicated by identity hash as QueueLeaves is:
	// queueBatch writes such a tree with it.
	appendLeaves appendFunc
	// appendsIntegrated: the storage integrates appended leaves in their
	// own commit, or wakes the sequencer itself (sqlite's Integrator), so
	// an append does not wake it.
	appendsIntegrated bool
}

// appendFunc appends leaves to the PREORDERED_LOG tree tree: for each leaf
// in order, what QueueLeaves would answer (AlreadyExists with the stored
// leaf for an identity hash the tree holds), with a new leaf's LeafIndex
// set; new leaves take contiguous positions from the tree's end, so that
// integration never meets a gap. Durable when it returns nil.
type appendFunc func(ctx context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error)

// treeCacheTTL is how long a tree read from admin storage is reused: a tree
// frozen or deleted through the admin API is noticed within this time.
const treeCacheTTL = time.Second

// treeCache holds the last tree read from admin storage.
type treeCache struct {
	admin tstorage.AdminStorage
	mu    sync.Mutex
	tree  *trillian.Tree
	at    time.Time
}

// withTree returns ctx carrying the tree the request names, when it can be
// read; otherwise ctx, and the server reports the error itself.
func (c *treeCache) withTree(ctx context.Context, req any) context.Context {
	r, ok := req.(interface{ GetLogId() int64 })
	if c == nil || !ok {
		return ctx
	}
	t, err := c.get(ctx, r.GetLogId())
	if err != nil {
		return ctx
	}
	return trees.NewContext(ctx, t)
}

// get returns tree id, read from admin storage at most once per
// treeCacheTTL.
func (c *treeCache) get(ctx context.Context, id int64) (*trillian.Tree, error) {
	c.mu.Lock()
	t := c.tree
	fresh := t != nil && t.TreeId == id && time.Since(c.at) < treeCacheTTL
	c.mu.Unlock()
	if fresh {
		return t, nil
	}
	t, err := tstorage.GetTree(ctx, c.admin, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tree, c.at = t, time.Now()
	c.mu.Unlock()
	return t, nil
}

// queueBatch queues leaves in one call to Trillian's storage, as Trillian's
// log server queues one leaf (Merkle leaf hash per RFC 6962, identity hash
// equal to it unless the leaf gives its own), so that a storage that commits per call writes them all in
// one transaction.
func (c logClient) queueBatch(ctx context.Context, treeID int64, in []*trillian.LogLeaf) ([]*trillian.QueuedLogLeaf, error) {
	tree, err := c.trees.get(ctx, treeID)
	if err != nil {
		return nil, toStatus(terrors.WrapError(err))
	}
	// A write wakes the sequencer, also a failed one (its leaves may have
	// been stored), unless the storage integrates appends itself.
	write, remember := c.storage.QueueLeaves, c.remember
	switch {
	case tree.TreeState != trillian.TreeState_ACTIVE:
		return nil, status.Errorf(codes.FailedPrecondition, "tree %d is in state %v; writing needs an ACTIVE tree", treeID, tree.TreeState)
	case tree.TreeType == trillian.TreeType_PREORDERED_LOG && c.appendLeaves != nil:
		// Integrating a pre-ordered tree reads the leaves whole: nothing
		// to remember.
		write, remember = c.appendLeaves, nil
		if !c.appendsIntegrated {
			defer c.queued()
		}
	case tree.TreeType != trillian.TreeType_LOG:
		return nil, status.Errorf(codes.FailedPrecondition, "tree %d is a %v tree; this storage writes only LOG trees", treeID, tree.TreeType)
	default:
		defer c.queued()
	}
	leaves := make([]*trillian.LogLeaf, len(in))
	for i, l := range in {
		h := l.MerkleLeafHash
		if len(h) != 32 {
			h = rfc6962.DefaultHasher.HashLeaf(l.LeafValue)
		}
		id := l.LeafIdentityHash
		if len(id) == 0 {
			id = h
		}
		leaves[i] = &trillian.LogLeaf{LeafValue: l.LeafValue, MerkleLeafHash: h, LeafIdentityHash: id, ExtraData: l.ExtraData}
	}
	res, err := write(trees.NewContext(ctx, tree), tree, leaves, time.Now())
	if err != nil {
		return nil, toStatus(terrors.WrapError(err))
	}
	if len(res) != len(in) {
		return nil, status.Errorf(codes.Internal, "storage answered %d leaves of %d", len(res), len(in))
	}
	if remember != nil {
		remember(res)
	}
	return res, nil
}

// adminClient is the same for Trillian's admin server.
type adminClient struct{ s *admin.Server }

// call runs an in-process method with gRPC's error semantics. Requests are
// cloned, as gRPC would marshal them, so the server's edits to a request
// (Trillian fills in leaf hashes) do not reach the caller.
func call[Req proto.Message, Resp any](ctx context.Context, f func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	return callIn(ctx, nil, f, req)
}

// callIn is call with the request's tree from c in the context.
func callIn[Req proto.Message, Resp any](ctx context.Context, c *treeCache, f func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	resp, err := f(c.withTree(ctx, req), proto.Clone(req).(Req))
	if err != nil {
		var zero Resp
		return zero, toStatus(terrors.WrapError(err))
	}
	return resp, nil
}

// toStatus turns err into a gRPC status error the way a gRPC server does.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// QueueLeaf queues a leaf through Trillian's log server; a PREORDERED_LOG
// tree that this process appends to gets it appended, as queueBatch does.
func (c logClient) QueueLeaf(ctx context.Context, in *trillian.QueueLeafRequest, _ ...grpc.CallOption) (*trillian.QueueLeafResponse, error) {
	if c.appendLeaves != nil && in.GetLeaf() != nil {
		if tree, err := c.trees.get(ctx, in.LogId); err == nil && tree.TreeType == trillian.TreeType_PREORDERED_LOG {
			res, err := c.queueBatch(ctx, in.LogId, []*trillian.LogLeaf{in.Leaf})
			if err != nil {
				return nil, err
			}
			return &trillian.QueueLeafResponse{QueuedLeaf: res[0]}, nil
		}
	}
	defer c.queued()
	return callIn(ctx, c.trees, c.s.QueueLeaf, in)
}

func (c logClient) GetInclusionProof(ctx context.Context, in *trillian.GetInclusionProofRequest, _ ...grpc.CallOption) (*trillian.GetInclusionProofResponse, error) {
	return callIn(ctx, c.trees, c.s.GetInclusionProof, in)
}

func (c logClient) GetInclusionProofByHash(ctx context.Context, in *trillian.GetInclusionProofByHashRequest, _ ...grpc.CallOption) (*trillian.GetInclusionProofByHashResponse, error) {
	return callIn(ctx, c.trees, c.s.GetInclusionProofByHash, in)
}

func (c logClient) GetConsistencyProof(ctx context.Context, in *trillian.GetConsistencyProofRequest, _ ...grpc.CallOption) (*trillian.GetConsistencyProofResponse, error) {
	return callIn(ctx, c.trees, c.s.GetConsistencyProof, in)
}

func (c logClient) GetLatestSignedLogRoot(ctx context.Context, in *trillian.GetLatestSignedLogRootRequest, _ ...grpc.CallOption) (*trillian.GetLatestSignedLogRootResponse, error) {
	return callIn(ctx, c.trees, c.s.GetLatestSignedLogRoot, in)
}

func (c logClient) GetEntryAndProof(ctx context.Context, in *trillian.GetEntryAndProofRequest, _ ...grpc.CallOption) (*trillian.GetEntryAndProofResponse, error) {
	return callIn(ctx, c.trees, c.s.GetEntryAndProof, in)
}

func (c logClient) InitLog(ctx context.Context, in *trillian.InitLogRequest, _ ...grpc.CallOption) (*trillian.InitLogResponse, error) {
	return callIn(ctx, c.trees, c.s.InitLog, in)
}

func (c logClient) AddSequencedLeaves(ctx context.Context, in *trillian.AddSequencedLeavesRequest, _ ...grpc.CallOption) (*trillian.AddSequencedLeavesResponse, error) {
	defer c.queued()
	return callIn(ctx, c.trees, c.s.AddSequencedLeaves, in)
}

func (c logClient) GetLeavesByRange(ctx context.Context, in *trillian.GetLeavesByRangeRequest, _ ...grpc.CallOption) (*trillian.GetLeavesByRangeResponse, error) {
	return callIn(ctx, c.trees, c.s.GetLeavesByRange, in)
}

func (c adminClient) ListTrees(ctx context.Context, in *trillian.ListTreesRequest, _ ...grpc.CallOption) (*trillian.ListTreesResponse, error) {
	return call(ctx, c.s.ListTrees, in)
}

func (c adminClient) GetTree(ctx context.Context, in *trillian.GetTreeRequest, _ ...grpc.CallOption) (*trillian.Tree, error) {
	return call(ctx, c.s.GetTree, in)
}

func (c adminClient) CreateTree(ctx context.Context, in *trillian.CreateTreeRequest, _ ...grpc.CallOption) (*trillian.Tree, error) {
	return call(ctx, c.s.CreateTree, in)
}

func (c adminClient) UpdateTree(ctx context.Context, in *trillian.UpdateTreeRequest, _ ...grpc.CallOption) (*trillian.Tree, error) {
	return call(ctx, c.s.UpdateTree, in)
}

func (c adminClient) DeleteTree(ctx context.Context, in *trillian.DeleteTreeRequest, _ ...grpc.CallOption) (*trillian.Tree, error) {
	return call(ctx, c.s.DeleteTree, in)
}

func (c adminClient) UndeleteTree(ctx context.Context, in *trillian.UndeleteTreeRequest, _ ...grpc.CallOption) (*trillian.Tree, error) {
	return call(ctx, c.s.UndeleteTree, in)
}

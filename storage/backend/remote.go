package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// newRemote connects to a Trillian log server over gRPC.
func newRemote(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.TreeID == 0 && cfg.State == nil {
		return nil, errors.New("backend: a remote Trillian needs the log's tree ID, or the state database to remember the tree it creates")
	}
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("backend: Trillian at %s: %w", cfg.Addr, err)
	}
	b := &Backend{
		Log:   trillian.NewTrillianLogClient(conn),
		Admin: trillian.NewTrillianAdminClient(conn),
		stop:  conn.Close,
	}
	b.healthy = func(ctx context.Context) error {
		_, err := b.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: b.TreeID})
		return err
	}
	if err := waitReady(ctx, conn, cfg.ConnectTimeout); err != nil {
		conn.Close()
		return nil, fmt.Errorf("backend: Trillian at %s: %w", cfg.Addr, err)
	}
	if err := b.ensureTree(ctx, cfg); err != nil {
		conn.Close()
		return nil, err
	}
	return b, nil
}

// waitReady waits until conn is connected, for at most timeout: in a
// cluster the log server may start after us.
func waitReady(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn.Connect()
	for {
		s := conn.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, s) {
			return fmt.Errorf("not reachable within %v (last state %v)", timeout, s)
		}
	}
}

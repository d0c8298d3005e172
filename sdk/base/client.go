package base

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// Client calls a plugin's Base service.
type Client struct {
	rpc pb.BaseClient
}

// NewClient returns a Base client on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: pb.NewBaseClient(conn)}
}

// Info asks the plugin who it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.rpc.Info(ctx, &pb.Empty{})
	if err != nil {
		return Info{}, err
	}
	return Info{Name: r.GetName(), Kind: r.GetKind(), Version: r.GetVersion()}, nil
}

// ConfigSchema fetches the plugin's config schema.
func (c *Client) ConfigSchema(ctx context.Context) (Schema, error) {
	r, err := c.rpc.Schema(ctx, &pb.Empty{})
	if err != nil {
		return Schema{}, err
	}
	return SchemaFromProto(r), nil
}

// Configure sends the decoded config (JSON of the cty value).
func (c *Client) Configure(ctx context.Context, configJSON []byte) error {
	_, err := c.rpc.Configure(ctx, &pb.ConfigureRequest{Json: configJSON})
	return err
}

// Health asks whether the plugin can serve calls.
func (c *Client) Health(ctx context.Context) error {
	r, err := c.rpc.Health(ctx, &pb.Empty{})
	if err != nil {
		return err
	}
	if !r.GetHealthy() {
		msg := r.GetMessage()
		if msg == "" {
			msg = "plugin reports unhealthy"
		}
		return errors.New(msg)
	}
	return nil
}

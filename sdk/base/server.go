package base

import (
	"context"
	"fmt"

	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// Server serves the Base service for impl. Kind packages register it beside
// their own service.
type Server struct {
	pb.UnimplementedBaseServer
	Impl Plugin
}

func (s *Server) Info(context.Context, *pb.Empty) (*pb.PluginInfo, error) {
	i := s.Impl.Info()
	return &pb.PluginInfo{Name: i.Name, Kind: i.Kind, Version: i.Version}, nil
}

func (s *Server) Schema(context.Context, *pb.Empty) (*pb.ConfigSchema, error) {
	return SchemaToProto(s.Impl.ConfigSchema()), nil
}

func (s *Server) Configure(ctx context.Context, req *pb.ConfigureRequest) (_ *pb.Empty, err error) {
	defer Recover(&err)
	if err := s.Impl.Configure(ctx, req.GetJson()); err != nil {
		return nil, err
	}
	return &pb.Empty{}, nil
}

func (s *Server) Health(ctx context.Context, _ *pb.Empty) (_ *pb.HealthResponse, err error) {
	defer Recover(&err)
	if err := s.Impl.Health(ctx); err != nil {
		return &pb.HealthResponse{Healthy: false, Message: err.Error()}, nil
	}
	return &pb.HealthResponse{Healthy: true}, nil
}

// Recover turns a panic in plugin code into an error for the host, so one
// bad request does not end the plugin process. Use as defer Recover(&err).
func Recover(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("plugin panicked: %v", p)
	}
}

// SchemaToProto converts a Schema for the wire.
func SchemaToProto(s Schema) *pb.ConfigSchema {
	out := &pb.ConfigSchema{}
	for _, a := range s.Attributes {
		out.Attributes = append(out.Attributes, &pb.Attribute{Name: a.Name, Type: a.Type, Required: a.Required, Description: a.Description})
	}
	for _, b := range s.Blocks {
		out.Blocks = append(out.Blocks, &pb.Block{Name: b.Name, Body: SchemaToProto(b.Body), Multiple: b.Multiple, Description: b.Description})
	}
	return out
}

// SchemaFromProto converts a wire schema back.
func SchemaFromProto(s *pb.ConfigSchema) Schema {
	var out Schema
	for _, a := range s.GetAttributes() {
		out.Attributes = append(out.Attributes, Attribute{Name: a.GetName(), Type: a.GetType(), Required: a.GetRequired(), Description: a.GetDescription()})
	}
	for _, b := range s.GetBlocks() {
		out.Blocks = append(out.Blocks, Block{Name: b.GetName(), Body: SchemaFromProto(b.GetBody()), Multiple: b.GetMultiple(), Description: b.GetDescription()})
	}
	return out
}

// Package codec is a gRPC codec named "proto" that marshals with google.golang.org/protobuf
// (APIv2).
//
// Debian's grpc-go 1.33 marshals through github.com/golang/protobuf 1.3.5, which does not know
// the messages protoc-gen-go ≥ 1.20 generates (it panics on them). Importing this package
// replaces grpc's registered "proto" codec; Codec{} can also be forced per call
// (grpc.ForceCodec).
package codec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	// Initialised first, so that the registration below replaces it.
	_ "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"
)

// Name is the content subtype: grpc's default codec name.
const Name = "proto"

// Codec marshals protobuf messages with the APIv2 runtime.
type Codec struct{}

// Marshal encodes v, which must be a proto.Message.
func (Codec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("codec: cannot marshal %T: not a protobuf (APIv2) message", v)
	}
	return proto.Marshal(m)
}

// Unmarshal decodes data into v, which must be a proto.Message.
func (Codec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec: cannot unmarshal into %T: not a protobuf (APIv2) message", v)
	}
	return proto.Unmarshal(data, m)
}

// Name is "proto".
func (Codec) Name() string { return Name }

func init() {
	encoding.RegisterCodec(Codec{})
}

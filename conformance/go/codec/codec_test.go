package codec

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"

	"contrast-rs/conformance/userapi"
)

func TestRegisteredCodecIsThisOne(t *testing.T) {
	if _, ok := encoding.GetCodec(Name).(Codec); !ok {
		t.Fatalf("the registered %q codec is %T, want codec.Codec", Name, encoding.GetCodec(Name))
	}
}

func TestRoundTripGeneratedMessage(t *testing.T) {
	c := encoding.GetCodec(Name)
	in := &userapi.GetManifestsResponse{
		Manifests:        [][]byte{[]byte(`{"Policies":{}}`)},
		Policies:         [][]byte{[]byte("a"), []byte("b")},
		RootCA:           []byte("root"),
		MeshCA:           []byte("mesh"),
		LatestTransition: &userapi.LatestTransition{TransitionHash: bytes.Repeat([]byte{7}, 32)},
	}
	wire, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// Field 1 (Manifests, bytes): tag 0x0a first.
	if len(wire) == 0 || wire[0] != 0x0a {
		t.Fatalf("unexpected encoding % x", wire)
	}
	out := &userapi.GetManifestsResponse{}
	if err := c.Unmarshal(wire, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip changed the message: %v != %v", in, out)
	}
}

func TestRejectsNonMessages(t *testing.T) {
	if _, err := (Codec{}).Marshal(42); err == nil {
		t.Fatal("marshalled an int")
	}
	if err := (Codec{}).Unmarshal(nil, new(int)); err == nil {
		t.Fatal("unmarshalled into an int")
	}
}

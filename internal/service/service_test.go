package service

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestNewClientsProtocol(t *testing.T) {
	cfg := aws.Config{Region: "us-east-1"}
	if _, err := NewClients(cfg, "cbor-please"); err == nil {
		t.Errorf("NewClients(unknown protocol) = nil; want an error")
	}
	for _, p := range []string{"", "query", "json"} {
		if _, err := NewClients(cfg, p); err != nil {
			t.Errorf("NewClients(%q) = %v", p, err)
		}
	}
}

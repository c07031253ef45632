package awssim

import (
	"maps"
	"strings"
)

// S3 is modelled as far as a job's checkpoint needs it: objects by
// s3://bucket/key URL, written and read by processes on an instance (aws s3
// sync with the instance's role), and read by tests.

// PutObject writes an object as a process on the instance does; url is
// s3://bucket/key.
func (h *Host) PutObject(url, body string) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.c.putObject(url, body)
}

// GetObject reads an object as a process on the instance does.
func (h *Host) GetObject(url string) (string, bool) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	b, ok := h.c.objects[url]
	return b, ok
}

func (c *Cloud) putObject(url, body string) {
	if c.objects == nil {
		c.objects = map[string]string{}
	}
	c.objects[url] = body
}

// Objects returns the objects whose URL starts with prefix.
func (c *Cloud) Objects(prefix string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, v := range maps.All(c.objects) {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

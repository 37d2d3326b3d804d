package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The messages of vineyard's IPC protocol that put, name, read and delete an object, as
// vineyard's own client 0.24.2 sends them (recorded between it and vineyardd 0.24.2; the
// selftest's tests run them against that daemon). An object id is a uint64 in requests and
// replies, and "o" + 16 hex digits inside metadata.

// codeObjectNotExists is vineyardd's status code for an unknown object or name.
const codeObjectNotExists = 12

// ObjectID formats an object id as vineyard writes it in metadata.
func ObjectID(id uint64) string { return fmt.Sprintf("o%016x", id) }

// ParseObjectID reads an id written by ObjectID.
func ParseObjectID(s string) (uint64, error) {
	if !strings.HasPrefix(s, "o") {
		return 0, fmt.Errorf("object id %q does not start with 'o'", s)
	}
	return strconv.ParseUint(s[1:], 16, 64)
}

// IsNotExists tells whether err is vineyardd's answer for an unknown object or name.
func IsNotExists(err error) bool {
	var re *ReplyError
	return errors.As(err, &re) && re.Code == codeObjectNotExists
}

// Buffer is a blob vineyardd allocated for this client and not yet sealed: Bytes is its memory,
// mapped from the file descriptor vineyardd passed over the socket (shared with vineyardd, so
// what is written there is the object's content; nothing is copied over the socket).
type Buffer struct {
	ID    uint64
	Bytes []byte
	unmap func() error
}

// Release unmaps the buffer from this process (the blob stays in vineyardd).
func (b *Buffer) Release() error {
	if b.unmap == nil {
		return nil
	}
	err := b.unmap()
	b.unmap, b.Bytes = nil, nil
	return err
}

// CreateBuffer asks vineyardd for a blob of size bytes and maps its memory. Over the socket
// only: vineyardd sends the memory's file descriptor (SCM_RIGHTS) right after its reply, the
// first time this connection sees that memory ("fd" -1 afterwards: one buffer per connection
// is all the selftest needs, so a -1 is an error here).
func (c *Conn) CreateBuffer(size uint64, timeout time.Duration) (*Buffer, error) {
	var reply struct {
		ID      uint64 `json:"id"`
		FD      int    `json:"fd"`
		Created struct {
			DataOffset uint64 `json:"data_offset"`
			DataSize   uint64 `json:"data_size"`
			MapSize    uint64 `json:"map_size"`
		} `json:"created"`
	}
	req := map[string]any{"type": "create_buffer_request", "size": size}
	if err := c.roundTrip(req, "create_buffer_reply", &reply, timeout); err != nil {
		return nil, err
	}
	created := reply.Created
	if created.DataSize != size || created.DataOffset+created.DataSize > created.MapSize {
		return nil, fmt.Errorf("create_buffer_reply for %d bytes gives %d bytes at offset %d "+
			"of a %d-byte mapping", size, created.DataSize, created.DataOffset, created.MapSize)
	}
	buffer := &Buffer{ID: reply.ID}
	if reply.FD < 0 {
		return buffer, errors.New("vineyardd passed no file descriptor for the buffer's memory")
	}
	fd, err := c.recvFD(timeout)
	if err != nil {
		return buffer, fmt.Errorf("receiving the buffer's file descriptor: %w", err)
	}
	defer syscall.Close(fd)
	// The whole of vineyardd's memory segment is mapped, as its client does: virtual address
	// space only; the pages this process writes are the ones it is charged for.
	mem, err := syscall.Mmap(fd, 0, int(created.MapSize), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_SHARED)
	if err != nil {
		return buffer, fmt.Errorf("mapping the buffer's memory: %w", err)
	}
	buffer.Bytes = mem[created.DataOffset : created.DataOffset+created.DataSize]
	buffer.unmap = func() error { return syscall.Munmap(mem) }
	return buffer, nil
}

// recvFD reads the one byte vineyardd sends with a file descriptor attached.
func (c *Conn) recvFD(timeout time.Duration) (int, error) {
	unix, ok := c.conn.(*net.UnixConn)
	if !ok {
		return -1, errors.New("file descriptors travel over the UNIX socket only")
	}
	if err := unix.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return -1, err
	}
	one := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := unix.ReadMsgUnix(one, oob)
	if err != nil {
		return -1, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return -1, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return -1, err
		}
		fds = append(fds, got...)
	}
	if n != 1 || len(fds) != 1 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return -1, fmt.Errorf("expected one byte with one descriptor, got %d bytes, %d descriptors", n, len(fds))
	}
	return fds[0], nil
}

// Seal makes the blob immutable (readable by others).
func (c *Conn) Seal(id uint64, timeout time.Duration) error {
	var reply struct{}
	return c.roundTrip(map[string]any{"type": "seal_request", "object_id": id}, "seal_reply", &reply, timeout)
}

// CreateData records an object's metadata; returns its id and the instance that holds it.
func (c *Conn) CreateData(meta map[string]any, timeout time.Duration) (uint64, uint64, error) {
	var reply struct {
		ID         uint64 `json:"id"`
		InstanceID uint64 `json:"instance_id"`
	}
	req := map[string]any{"type": "create_data_request", "content": meta}
	if err := c.roundTrip(req, "create_data_reply", &reply, timeout); err != nil {
		return 0, 0, err
	}
	return reply.ID, reply.InstanceID, nil
}

// Persist makes the object's metadata visible to every instance (through etcd).
func (c *Conn) Persist(id uint64, timeout time.Duration) error {
	var reply struct{}
	return c.roundTrip(map[string]any{"type": "persist_request", "id": id}, "persist_reply", &reply, timeout)
}

// PutName names a persisted object.
func (c *Conn) PutName(id uint64, name string, timeout time.Duration) error {
	var reply struct{}
	req := map[string]any{"type": "put_name_request", "object_id": id, "name": name}
	return c.roundTrip(req, "put_name_reply", &reply, timeout)
}

// GetName resolves a name without waiting for it.
func (c *Conn) GetName(name string, timeout time.Duration) (uint64, error) {
	var reply struct {
		ObjectID uint64 `json:"object_id"`
	}
	req := map[string]any{"type": "get_name_request", "name": name, "wait": false}
	if err := c.roundTrip(req, "get_name_reply", &reply, timeout); err != nil {
		return 0, err
	}
	return reply.ObjectID, nil
}

// DropName removes a name (the object stays).
func (c *Conn) DropName(name string, timeout time.Duration) error {
	var reply struct{}
	return c.roundTrip(map[string]any{"type": "drop_name_request", "name": name}, "drop_name_reply", &reply, timeout)
}

// GetData returns an object's metadata tree, synced from the other instances first.
func (c *Conn) GetData(id uint64, timeout time.Duration) (map[string]any, error) {
	var reply struct {
		Content map[string]map[string]any `json:"content"`
	}
	req := map[string]any{"type": "get_data_request", "id": []uint64{id}, "sync_remote": true, "wait": false}
	if err := c.roundTrip(req, "get_data_reply", &reply, timeout); err != nil {
		return nil, err
	}
	meta, ok := reply.Content[ObjectID(id)]
	if !ok {
		return nil, &ReplyError{Code: codeObjectNotExists, Message: "no metadata for " + ObjectID(id)}
	}
	return meta, nil
}

// Delete deletes an object and its members (deep), wherever in the cluster they are: the
// instance holding a blob frees its memory when the deletion reaches it.
func (c *Conn) Delete(id uint64, timeout time.Duration) error {
	var reply struct{}
	req := map[string]any{"type": "del_data_request", "id": []uint64{id}, "deep": true,
		"force": false, "fastpath": false, "memory_trim": false}
	return c.roundTrip(req, "del_data_reply", &reply, timeout)
}

// RPCEndpoints maps each instance id of the cluster to the RPC endpoint it advertises.
func (c *Conn) RPCEndpoints(timeout time.Duration) (map[uint64]string, error) {
	var reply struct {
		Meta map[string]struct {
			RPCEndpoint string `json:"rpc_endpoint"`
		} `json:"meta"`
	}
	if err := c.roundTrip(map[string]any{"type": "cluster_meta"}, "cluster_meta", &reply, timeout); err != nil {
		return nil, err
	}
	out := map[uint64]string{}
	for key, instance := range reply.Meta {
		id, err := strconv.ParseUint(strings.TrimPrefix(key, "i"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cluster_meta: instance key %q: %w", key, err)
		}
		out[id] = instance.RPCEndpoint
	}
	return out, nil
}

// ReadBlob reads a blob's bytes as vineyard's RPC client does for a remote object: vineyardd
// sends them after its reply, uncompressed since the request asks so. Ask the instance that
// holds the blob.
func (c *Conn) ReadBlob(id uint64, limit uint64, timeout time.Duration) ([]byte, error) {
	var reply struct {
		Payloads []struct {
			ObjectID uint64 `json:"object_id"`
			DataSize uint64 `json:"data_size"`
		} `json:"payloads"`
		Compress bool `json:"compress"`
	}
	req := map[string]any{"type": "get_remote_buffers_request", "num": 1, "0": id,
		"compress": false, "unsafe": false, "use_rdma": false}
	if err := c.roundTrip(req, "get_buffers_reply", &reply, timeout); err != nil {
		return nil, err
	}
	if len(reply.Payloads) != 1 || reply.Payloads[0].ObjectID != id {
		return nil, fmt.Errorf("get_buffers_reply for %s lists %d payloads", ObjectID(id), len(reply.Payloads))
	}
	if reply.Compress {
		return nil, errors.New("vineyardd compressed the bytes although asked not to")
	}
	size := reply.Payloads[0].DataSize
	if size > limit {
		return nil, fmt.Errorf("blob %s has %d bytes, more than the %d expected", ObjectID(id), size, limit)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(c.conn, data); err != nil {
		return nil, fmt.Errorf("reading %d bytes of blob %s: %w", size, ObjectID(id), err)
	}
	return data, nil
}

// metaString returns a metadata field written as a string; metaUint one written as a number.
func metaString(meta map[string]any, key string) string {
	s, _ := meta[key].(string)
	return s
}

func metaUint(meta map[string]any, key string) (uint64, bool) {
	switch v := meta[key].(type) {
	case float64:
		return uint64(v), v >= 0 && v == float64(uint64(v))
	case json.Number:
		n, err := strconv.ParseUint(v.String(), 10, 64)
		return n, err == nil
	}
	return 0, false
}

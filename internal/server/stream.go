package server

import "google.golang.org/protobuf/proto"

// streamChunkBytes bounds one streamed response well below gRPC's default
// 16 MiB message limit, leaving room for framing.
const streamChunkBytes = 4 << 20

// sendInChunks sends items in order, as few responses as fit under
// streamChunkBytes each; every item appears exactly once. An empty list is
// one empty response, so the client always sees the stream complete.
func sendInChunks[T proto.Message](items []T, send func([]T) error) error {
	if len(items) == 0 {
		return send(nil)
	}
	start, size := 0, 0
	for i, item := range items {
		n := proto.Size(item) + 8 // field tag and length prefix
		if i > start && size+n > streamChunkBytes {
			if err := send(items[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	return send(items[start:])
}

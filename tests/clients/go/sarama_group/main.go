// Command sarama_group is a Sarama consumer-group member that commits exactly what it
// processed.
//
// Usage: sarama_group --bootstrap HOST:PORT --topic NAME --group ID [--max N] [--timeout S]
//
// It joins group --group (OffsetOldest when nothing is committed), and for every record
// prints "R <partition> <offset> <value>" and marks the next offset (metadata
// "sarama:<partition>:<offset>"); Sarama's offset manager commits marks every 100 ms and
// once more when the group is closed. It stops after at least --max records, or with
// --max 0 once every partition has been read up to the high watermark taken at the
// start. After closing it reads the group's offsets back with OffsetFetch, fails unless
// they equal the marks, prints them as "C <partition> <next offset>" and ends with
// "DONE <records read>". Exits 0 only on success. Built in GOPATH mode against Debian's
// Sarama, like tests/clients/go/sarama_roundtrip.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL sarama: "+format+"\n", args...)
	os.Exit(1)
}

type handler struct {
	mu        sync.Mutex
	max       int
	read      int
	ends      map[int32]int64
	positions map[int32]int64
	marked    map[int32]int64
	finished  bool
	cancel    context.CancelFunc
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// doneLocked: enough records read, or every partition read to its start-time end.
func (h *handler) doneLocked() bool {
	if h.max > 0 {
		return h.read >= h.max
	}
	for p, end := range h.ends {
		if h.positions[p] < end {
			return false
		}
	}
	return true
}

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.mu.Lock()
	if start := claim.InitialOffset(); start >= 0 {
		if _, seen := h.positions[claim.Partition()]; !seen {
			h.positions[claim.Partition()] = start
		}
	}
	if h.doneLocked() {
		h.finished = true
		h.cancel()
	}
	h.mu.Unlock()
	for msg := range claim.Messages() {
		h.mu.Lock()
		if h.finished {
			h.mu.Unlock()
			continue
		}
		fmt.Printf("R %d %d %s\n", msg.Partition, msg.Offset, msg.Value)
		h.read++
		h.positions[msg.Partition] = msg.Offset + 1
		h.marked[msg.Partition] = msg.Offset + 1
		sess.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1,
			fmt.Sprintf("sarama:%d:%d", msg.Partition, msg.Offset+1))
		if h.doneLocked() {
			h.finished = true
			h.cancel()
		}
		h.mu.Unlock()
	}
	return nil
}

func main() {
	bootstrap := flag.String("bootstrap", "", "HOST:PORT")
	topic := flag.String("topic", "", "topic")
	group := flag.String("group", "", "group id")
	max := flag.Int("max", 0, "stop after this many records (0: read to the end)")
	timeout := flag.Duration("timeout", 90*time.Second, "overall time limit")
	flag.Parse()
	if *bootstrap == "" || *topic == "" || *group == "" {
		fail("usage: sarama_group --bootstrap HOST:PORT --topic NAME --group ID [--max N]")
	}
	time.AfterFunc(*timeout, func() { fail("overall timeout of %s exceeded", *timeout) })

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "isthmus-test-sarama-group"
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	// A retention makes Sarama send OffsetCommit v2 (Kafka 4 refuses v0 and v1).
	cfg.Consumer.Offsets.Retention = 24 * time.Hour
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond

	client, err := sarama.NewClient([]string{*bootstrap}, cfg)
	if err != nil {
		fail("client: %v", err)
	}
	partitions, err := client.Partitions(*topic)
	if err != nil || len(partitions) == 0 {
		fail("partitions of %s: %v", *topic, err)
	}
	h := &handler{
		max:       *max,
		ends:      map[int32]int64{},
		positions: map[int32]int64{},
		marked:    map[int32]int64{},
	}
	for _, p := range partitions {
		end, err := client.GetOffset(*topic, p, sarama.OffsetNewest)
		if err != nil {
			fail("high watermark of partition %d: %v", p, err)
		}
		h.ends[p] = end
	}

	cg, err := sarama.NewConsumerGroupFromClient(*group, client)
	if err != nil {
		fail("consumer group: %v", err)
	}
	go func() {
		for err := range cg.Errors() {
			fail("consumer group error: %v", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{*topic}, h); err != nil {
			fail("consume: %v", err)
		}
	}
	// Close flushes the last marks to the coordinator.
	if err := cg.Close(); err != nil {
		fail("close: %v", err)
	}

	admin, err := sarama.NewClusterAdmin([]string{*bootstrap}, cfg)
	if err != nil {
		fail("admin: %v", err)
	}
	defer admin.Close()
	fetched, err := admin.ListConsumerGroupOffsets(*group, map[string][]int32{*topic: partitions})
	if err != nil {
		fail("OffsetFetch: %v", err)
	}
	sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
	for _, p := range partitions {
		want, marked := h.marked[p]
		if !marked {
			continue
		}
		block := fetched.GetBlock(*topic, p)
		if block == nil || block.Err != sarama.ErrNoError || block.Offset != want {
			fail("partition %d: marked %d but the broker has %+v", p, want, block)
		}
		if meta := fmt.Sprintf("sarama:%d:%d", p, want); block.Metadata != meta {
			fail("partition %d: metadata %q, want %q", p, block.Metadata, meta)
		}
		fmt.Printf("C %d %d\n", p, want)
	}
	fmt.Printf("DONE %d\n", h.read)
	client.Close()
}

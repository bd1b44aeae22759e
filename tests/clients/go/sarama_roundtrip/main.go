// Command sarama_roundtrip is the Sarama round trip against a broker: create topic,
// produce, read back, verify.
//
// Usage: sarama_roundtrip --bootstrap HOST:PORT --topic NAME [--count N] [--partitions P]
//
// It is built in GOPATH mode against Debian's golang-github-shopify-sarama-dev
// (scripts/install-test-deps.sh installs it):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run ./tests/clients/go/sarama_roundtrip ...
//
// It creates the topic through the ClusterAdmin, produces --count records with explicit
// partitions, keys, values, headers and timestamps (the same plan as
// tests/clients/python/roundtrip_common.py), reads every partition back from the
// oldest offset with partition consumers (no consumer group) and checks each record.
// It prints one summary line and exits 0 only when everything matched.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Shopify/sarama"
)

const (
	client            = "sarama"
	maxErrorsReported = 20
)

type expected struct {
	seq       int
	partition int32
	key       []byte
	value     []byte
	headers   []sarama.RecordHeader
	timestamp int64 // ms
}

func plan(count int, partitions int32, baseTsMs int64) []expected {
	out := make([]expected, count)
	for i := 0; i < count; i++ {
		value := []byte(fmt.Sprintf("%s-value-%06d|", client, i))
		for j := 0; j < i%101; j++ {
			value = append(value, byte((i*31+j*7)%256))
		}
		headers := []sarama.RecordHeader{
			{Key: []byte("seq"), Value: []byte(strconv.Itoa(i))},
			{Key: []byte("client"), Value: []byte(client)},
			{Key: []byte("bin"), Value: []byte{byte(i % 256), 0, 255}},
		}
		if i%10 == 0 {
			headers = append(headers, sarama.RecordHeader{Key: []byte("empty"), Value: []byte{}})
		}
		out[i] = expected{
			seq:       i,
			partition: int32(i) % partitions,
			key:       []byte(fmt.Sprintf("%s-key-%06d", client, i)),
			value:     value,
			headers:   headers,
			timestamp: baseTsMs + int64(i),
		}
	}
	return out
}

type verifier struct {
	expected   []expected
	partitions int32
	seen       map[int]bool
	nextOffset map[int32]int64
	lastSeq    map[int32]int
	delivered  map[int]int64
	errors     []string
	consumed   int
}

func newVerifier(exp []expected, partitions int32) *verifier {
	v := &verifier{expected: exp, partitions: partitions, seen: map[int]bool{},
		nextOffset: map[int32]int64{}, lastSeq: map[int32]int{}, delivered: map[int]int64{}}
	for p := int32(0); p < partitions; p++ {
		v.lastSeq[p] = -1
	}
	return v
}

func (v *verifier) errorf(format string, args ...interface{}) {
	v.errors = append(v.errors, fmt.Sprintf(format, args...))
}

func (v *verifier) done() bool          { return len(v.seen) == len(v.expected) }
func (v *verifier) tooManyErrors() bool { return len(v.errors) >= maxErrorsReported }
func short(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func headersString(hs []sarama.RecordHeader) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s=%q", h.Key, h.Value)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (v *verifier) expectedCount(p int32) int64 {
	n := int64(0)
	for _, e := range v.expected {
		if e.partition == p {
			n++
		}
	}
	return n
}

func (v *verifier) check(m *sarama.ConsumerMessage) {
	v.consumed++
	where := fmt.Sprintf("partition %d offset %d", m.Partition, m.Offset)
	prefix := []byte(client + "-key-")
	if !bytes.HasPrefix(m.Key, prefix) {
		v.errorf("%s: unexpected key %s", where, short(m.Key))
		return
	}
	seq, err := strconv.Atoi(string(m.Key[len(prefix):]))
	if err != nil || seq < 0 || seq >= len(v.expected) {
		v.errorf("%s: unexpected key %s", where, short(m.Key))
		return
	}
	if v.seen[seq] {
		v.errorf("%s: seq %d read twice", where, seq)
		return
	}
	v.seen[seq] = true
	e := v.expected[seq]
	if !bytes.Equal(m.Key, e.key) {
		v.errorf("%s: seq %d key %s != %s", where, seq, short(m.Key), short(e.key))
	}
	if m.Partition != e.partition {
		v.errorf("%s: seq %d was produced to partition %d", where, seq, e.partition)
	}
	if m.Offset != v.nextOffset[m.Partition] {
		v.errorf("%s: seq %d: expected offset %d on partition %d (offsets must be contiguous from 0)",
			where, seq, v.nextOffset[m.Partition], m.Partition)
	}
	v.nextOffset[m.Partition] = m.Offset + 1
	if last, ok := v.lastSeq[m.Partition]; ok && seq <= last {
		v.errorf("%s: seq %d read after seq %d: order within the partition broken", where, seq, last)
	}
	v.lastSeq[m.Partition] = seq
	if off, ok := v.delivered[seq]; ok && off != m.Offset {
		v.errorf("%s: seq %d was acknowledged at offset %d", where, seq, off)
	}
	if !bytes.Equal(m.Value, e.value) {
		v.errorf("%s: seq %d value %s != expected %s", where, seq, short(m.Value), short(e.value))
	}
	got := make([]sarama.RecordHeader, 0, len(m.Headers))
	for _, h := range m.Headers {
		if h == nil {
			got = append(got, sarama.RecordHeader{Key: []byte("<nil header>")})
			continue
		}
		got = append(got, *h)
	}
	same := len(got) == len(e.headers)
	for i := 0; same && i < len(got); i++ {
		same = bytes.Equal(got[i].Key, e.headers[i].Key) && bytes.Equal(got[i].Value, e.headers[i].Value) &&
			(got[i].Value == nil) == (e.headers[i].Value == nil)
	}
	if !same {
		v.errorf("%s: seq %d headers %s != expected %s", where, seq, headersString(got), headersString(e.headers))
	}
	if ts := m.Timestamp.UnixNano() / int64(time.Millisecond); ts != e.timestamp {
		v.errorf("%s: seq %d timestamp %d != expected %d", where, seq, ts, e.timestamp)
	}
}

func (v *verifier) finish(elapsed time.Duration) int {
	var missing []int
	byPartition := map[int32][]int{}
	for _, e := range v.expected {
		if !v.seen[e.seq] {
			missing = append(missing, e.seq)
			if len(byPartition[e.partition]) < 5 {
				byPartition[e.partition] = append(byPartition[e.partition], e.seq)
			}
		}
	}
	if len(missing) > 0 {
		var ps []string
		for p := int32(0); p < v.partitions; p++ {
			if s, ok := byPartition[p]; ok {
				ps = append(ps, fmt.Sprintf("p%d: seq %v", p, s))
			}
		}
		v.errorf("%d of %d records never read back; first missing per partition: %s",
			len(missing), len(v.expected), strings.Join(ps, ", "))
	}
	if len(v.errors) > 0 {
		fmt.Printf("FAIL %s: %d problem(s), consumed %d of %d in %.1fs; first: %s\n",
			client, len(v.errors), v.consumed, len(v.expected), elapsed.Seconds(), v.errors[0])
		for i := 1; i < len(v.errors) && i < maxErrorsReported; i++ {
			fmt.Printf("  - %s\n", v.errors[i])
		}
		return 1
	}
	fmt.Printf("OK %s: %d records over %d partitions produced and read back intact "+
		"(keys, values, headers, timestamps, per-partition order, offsets) in %.1fs\n",
		client, len(v.expected), v.partitions, elapsed.Seconds())
	return 0
}

var phase = "start"

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL %s: %s (phase: %s)\n", client, fmt.Sprintf(format, args...), phase)
	os.Exit(1)
}

func main() {
	bootstrap := flag.String("bootstrap", "", "HOST:PORT of a broker (required)")
	topic := flag.String("topic", "", "topic name (required)")
	count := flag.Int("count", 1000, "records to produce")
	partitionsWanted := flag.Int("partitions", 3, "partitions to create the topic with")
	timeout := flag.Duration("timeout", 60*time.Second, "overall time limit")
	flag.Parse()
	if *bootstrap == "" || *topic == "" || *count < 1 || *partitionsWanted < 1 {
		fmt.Fprintln(os.Stderr, "usage: sarama_roundtrip --bootstrap HOST:PORT --topic NAME [--count N] [--partitions P]")
		os.Exit(2)
	}
	started := time.Now()
	deadline := started.Add(*timeout - 5*time.Second)
	time.AfterFunc(*timeout, func() {
		fmt.Printf("FAIL %s: overall timeout of %s exceeded (phase: %s)\n", client, *timeout, phase)
		os.Exit(3)
	})
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "isthmus-test-sarama"
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = 15 * time.Second
	cfg.Net.WriteTimeout = 15 * time.Second
	cfg.Net.MaxOpenRequests = 1
	cfg.Admin.Timeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.Retry.Max = 5
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	addrs := []string{*bootstrap}

	// -- create the topic
	phase = "create topic"
	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		fail("cannot connect the admin client: %v", err)
	}
	created := true
	err = admin.CreateTopic(*topic, &sarama.TopicDetail{NumPartitions: int32(*partitionsWanted), ReplicationFactor: 1}, false)
	if te, ok := err.(*sarama.TopicError); ok && te.Err == sarama.ErrTopicAlreadyExists {
		created = false
	} else if err != nil {
		fail("CreateTopics for %s failed: %v", *topic, err)
	}
	_ = admin.Close()

	// -- wait for metadata with a leader for every partition
	phase = "metadata"
	cl, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		fail("cannot connect: %v", err)
	}
	defer cl.Close()
	var partitions []int32
	for time.Now().Before(deadline) {
		if err = cl.RefreshMetadata(*topic); err == nil {
			partitions, err = cl.WritablePartitions(*topic)
			if err == nil && len(partitions) > 0 && (len(partitions) == *partitionsWanted || !created) {
				all, _ := cl.Partitions(*topic)
				if len(all) == len(partitions) {
					break
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
	for i, p := range partitions {
		if int32(i) != p {
			partitions = nil
			break
		}
	}
	if len(partitions) == 0 {
		fail("metadata for %s never listed partitions 0..n-1 with leaders (last error: %v)", *topic, err)
	}
	nPartitions := int32(len(partitions))

	// -- produce
	phase = "produce"
	base := (time.Now().Unix() - 60) * 1000
	exp := plan(*count, nPartitions, base)
	v := newVerifier(exp, nPartitions)
	producer, err := sarama.NewSyncProducerFromClient(cl)
	if err != nil {
		fail("cannot create producer: %v", err)
	}
	msgs := make([]*sarama.ProducerMessage, len(exp))
	for i, e := range exp {
		msgs[i] = &sarama.ProducerMessage{
			Topic:     *topic,
			Key:       sarama.ByteEncoder(e.key),
			Value:     sarama.ByteEncoder(e.value),
			Headers:   e.headers,
			Partition: e.partition,
			Timestamp: time.Unix(0, e.timestamp*int64(time.Millisecond)),
			Metadata:  e.seq,
		}
	}
	if err := producer.SendMessages(msgs); err != nil {
		if perrs, ok := err.(sarama.ProducerErrors); ok {
			for i, pe := range perrs {
				if i >= 5 {
					break
				}
				v.errorf("produce of seq %v failed: %v", pe.Msg.Metadata, pe.Err)
			}
			v.errorf("%d of %d produces failed", len(perrs), len(msgs))
		} else {
			v.errorf("produce failed: %v", err)
		}
		os.Exit(v.finish(time.Since(started)))
	}
	for _, m := range msgs {
		seq := m.Metadata.(int)
		if m.Partition != exp[seq].partition {
			v.errorf("seq %d acknowledged on partition %d, produced to %d", seq, m.Partition, exp[seq].partition)
		}
		v.delivered[seq] = m.Offset
	}
	if err := producer.Close(); err != nil {
		v.errorf("closing the producer: %v", err)
	}

	// -- consume from the oldest offset with partition consumers (no group)
	phase = "consume"
	consumer, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		fail("cannot create consumer: %v", err)
	}
	type item struct {
		msg *sarama.ConsumerMessage
		err *sarama.ConsumerError
	}
	items := make(chan item, 256)
	var pcs []sarama.PartitionConsumer
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(*topic, p, sarama.OffsetOldest)
		if err != nil {
			fail("ConsumePartition(%s, %d, oldest): %v", *topic, p, err)
		}
		pcs = append(pcs, pc)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				items <- item{msg: m}
			}
		}(pc)
		go func(pc sarama.PartitionConsumer) {
			for e := range pc.Errors() {
				items <- item{err: e}
			}
		}(pc)
	}
	timer := time.NewTimer(time.Until(deadline))
consume:
	for !v.done() && !v.tooManyErrors() {
		select {
		case it := <-items:
			if it.err != nil {
				v.errorf("consume error on partition %d: %v", it.err.Partition, it.err.Err)
			} else {
				v.check(it.msg)
			}
		case <-timer.C:
			break consume
		}
	}

	phase = "end offsets"
	if v.done() {
		for _, p := range partitions {
			hw, err := cl.GetOffset(*topic, p, sarama.OffsetNewest)
			if err != nil {
				v.errorf("ListOffsets(latest) for partition %d: %v", p, err)
			} else if want := v.expectedCount(p); hw != want {
				v.errorf("partition %d: high watermark %d, expected %d (records produced to it)", p, hw, want)
			}
		}
	}
	for _, pc := range pcs {
		pc.AsyncClose()
	}
	os.Exit(v.finish(time.Since(started)))
}

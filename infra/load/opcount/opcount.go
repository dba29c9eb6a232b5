// Package opcount counts what a process asks of Firestore and Pub/Sub: a gRPC proxy
// on loopback in front of an emulator that forwards every call unchanged and counts
// the billable units it sees (documents written and read, messages and bytes
// published and delivered). The load run and the tests put it between a client and
// the emulator, so that "one write per event" is counted, not estimated.
package opcount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Counts are the billable units seen so far.
type Counts struct {
	// Firestore: documents written (each write of a Commit or BatchWrite, in a
	// transaction or not), documents read (each document a get or query returned,
	// and one per query that returned none, as Firestore bills it).
	Writes, Reads int64
	// Transactions begun (each is a BeginTransaction call; not billed itself).
	Transactions int64
	// Pub/Sub: messages and publish requests, and the bytes of the messages (data,
	// attributes, ordering key), as published; messages and bytes delivered by
	// pulls.
	Published, PublishRequests, PublishedBytes int64
	Delivered, DeliveredBytes                  int64
	// Calls by full method name.
	Calls map[string]int64
}

// Sub returns c minus before (a step's share of a run).
func (c Counts) Sub(before Counts) Counts {
	out := Counts{
		Writes: c.Writes - before.Writes, Reads: c.Reads - before.Reads, Transactions: c.Transactions - before.Transactions,
		Published: c.Published - before.Published, PublishRequests: c.PublishRequests - before.PublishRequests,
		PublishedBytes: c.PublishedBytes - before.PublishedBytes,
		Delivered:      c.Delivered - before.Delivered, DeliveredBytes: c.DeliveredBytes - before.DeliveredBytes,
		Calls: map[string]int64{},
	}
	for m, n := range c.Calls {
		if d := n - before.Calls[m]; d != 0 {
			out.Calls[m] = d
		}
	}
	return out
}

// String lists the counts and the calls, for logs and test failures.
func (c Counts) String() string {
	methods := make([]string, 0, len(c.Calls))
	for m := range c.Calls {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	var b strings.Builder
	fmt.Fprintf(&b, "writes=%d reads=%d transactions=%d published=%d (%d requests, %d B) delivered=%d (%d B)",
		c.Writes, c.Reads, c.Transactions, c.Published, c.PublishRequests, c.PublishedBytes, c.Delivered, c.DeliveredBytes)
	for _, m := range methods {
		fmt.Fprintf(&b, " %s=%d", m[strings.LastIndexByte(m, '/')+1:], c.Calls[m])
	}
	return b.String()
}

// Proxy forwards gRPC calls from Addr to an emulator and counts them.
type Proxy struct {
	// Addr is where clients connect ("127.0.0.1:PORT").
	Addr string

	lis  net.Listener
	srv  *grpc.Server
	conn *grpc.ClientConn

	writes, reads, txs           atomic.Int64
	published, pubReqs, pubBytes atomic.Int64
	delivered, deliveredBytes    atomic.Int64
	mu                           sync.Mutex
	calls                        map[string]int64
}

// Start listens on a free loopback port and forwards to target ("host:port").
func Start(target string) (*Proxy, error) {
	conn, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		return nil, fmt.Errorf("opcount: dial %s: %w", target, err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opcount: listen: %w", err)
	}
	p := &Proxy{Addr: lis.Addr().String(), lis: lis, conn: conn, calls: map[string]int64{}}
	p.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(p.forward),
		grpc.MaxRecvMsgSize(1<<30), grpc.MaxSendMsgSize(1<<30))
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

// Close stops the proxy (calls in flight end).
func (p *Proxy) Close() {
	p.srv.Stop()
	p.conn.Close()
}

// Counts returns the counts so far.
func (p *Proxy) Counts() Counts {
	c := Counts{
		Writes: p.writes.Load(), Reads: p.reads.Load(), Transactions: p.txs.Load(),
		Published: p.published.Load(), PublishRequests: p.pubReqs.Load(), PublishedBytes: p.pubBytes.Load(),
		Delivered: p.delivered.Load(), DeliveredBytes: p.deliveredBytes.Load(), Calls: map[string]int64{},
	}
	p.mu.Lock()
	for m, n := range p.calls {
		c.Calls[m] = n
	}
	p.mu.Unlock()
	return c
}

// frame is one message as bytes on the wire; the proxy does not decode what it does
// not count.
type frame struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*frame).b, nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	v.(*frame).b = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// forward relays one call of any kind (unary or streaming) to the emulator.
func (p *Proxy) forward(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return errors.New("opcount: no method")
	}
	p.mu.Lock()
	p.calls[method]++
	p.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ss.Context())
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ss.Context(), md.Copy()))
	defer cancel()
	cs, err := p.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	up := make(chan error, 1)
	go func() {
		for {
			f := &frame{}
			if err := ss.RecvMsg(f); err != nil {
				if err == io.EOF {
					err = cs.CloseSend()
				}
				up <- err
				return
			}
			p.request(method, f.b)
			if err := cs.SendMsg(f); err != nil {
				up <- err
				return
			}
		}
	}()
	q := &query{}
	defer p.endQuery(method, q)
	for first := true; ; first = false {
		f := &frame{}
		err := cs.RecvMsg(f)
		if first {
			if h, herr := cs.Header(); herr == nil {
				_ = ss.SendHeader(h)
			}
		}
		if err != nil {
			ss.SetTrailer(cs.Trailer())
			if err == io.EOF {
				return nil
			}
			return err
		}
		p.response(method, f.b, q)
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}

const (
	fsPrefix = "/google.firestore.v1.Firestore/"
	psPub    = "/google.pubsub.v1.Publisher/Publish"
	psPull   = "/google.pubsub.v1.Subscriber/Pull"
	psSPull  = "/google.pubsub.v1.Subscriber/StreamingPull"
)

// query tracks one call's documents, for the one-read minimum of an empty query.
type query struct{ docs int64 }

func (p *Proxy) request(method string, b []byte) {
	switch method {
	case fsPrefix + "Commit":
		var r firestorepb.CommitRequest
		if proto.Unmarshal(b, &r) == nil {
			p.writes.Add(int64(len(r.Writes)))
		}
	case fsPrefix + "BatchWrite":
		var r firestorepb.BatchWriteRequest
		if proto.Unmarshal(b, &r) == nil {
			p.writes.Add(int64(len(r.Writes)))
		}
	case fsPrefix + "BeginTransaction":
		p.txs.Add(1)
	case psPub:
		var r pubsubpb.PublishRequest
		if proto.Unmarshal(b, &r) == nil {
			p.pubReqs.Add(1)
			p.published.Add(int64(len(r.Messages)))
			p.pubBytes.Add(messageBytes(r.Messages))
		}
	}
}

func (p *Proxy) response(method string, b []byte, q *query) {
	switch method {
	case fsPrefix + "BatchGetDocuments":
		var r firestorepb.BatchGetDocumentsResponse
		// A missing document is billed as a read too.
		if proto.Unmarshal(b, &r) == nil && r.Result != nil {
			p.reads.Add(1)
		}
	case fsPrefix + "GetDocument":
		p.reads.Add(1)
	case fsPrefix + "RunQuery":
		var r firestorepb.RunQueryResponse
		if proto.Unmarshal(b, &r) == nil && r.Document != nil {
			p.reads.Add(1)
			q.docs++
		}
	case fsPrefix + "ListDocuments":
		var r firestorepb.ListDocumentsResponse
		if proto.Unmarshal(b, &r) == nil {
			p.reads.Add(int64(len(r.Documents)))
			q.docs += int64(len(r.Documents))
		}
	case psPull:
		var r pubsubpb.PullResponse
		if proto.Unmarshal(b, &r) == nil {
			p.deliver(r.ReceivedMessages)
		}
	case psSPull:
		var r pubsubpb.StreamingPullResponse
		if proto.Unmarshal(b, &r) == nil {
			p.deliver(r.ReceivedMessages)
		}
	}
}

func (p *Proxy) endQuery(method string, q *query) {
	if (method == fsPrefix+"RunQuery" || method == fsPrefix+"ListDocuments") && q.docs == 0 {
		p.reads.Add(1)
	}
}

func (p *Proxy) deliver(ms []*pubsubpb.ReceivedMessage) {
	p.delivered.Add(int64(len(ms)))
	var n int64
	for _, m := range ms {
		if m.Message != nil {
			n += messageBytes([]*pubsubpb.PubsubMessage{m.Message})
		}
	}
	p.deliveredBytes.Add(n)
}

// messageBytes is what Pub/Sub bills per message before its per-request minimum:
// data, attribute keys and values, ordering key (message id and publish time are
// added by Pub/Sub; the cost command adds them).
func messageBytes(ms []*pubsubpb.PubsubMessage) int64 {
	var n int64
	for _, m := range ms {
		n += int64(len(m.Data) + len(m.OrderingKey))
		for k, v := range m.Attributes {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

package smtpclient

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTimeouts: a server that stalls at one stage is given up on after
// that stage's timeout (RFC 5321 4.5.3.2), on every path: lock step,
// pipelined groups and BDAT. The stage's timeout is short and every other
// long, so waiting under the wrong one shows as a wrong stage in the
// error or as a long wait; with BDAT, the RCPT reply is waited for under
// the RCPT timeout, not the end-of-data one.
func TestTimeouts(t *testing.T) {
	const short, long = 200 * time.Millisecond, time.Minute
	all := func(set func(*Timeouts)) Timeouts {
		tm := Timeouts{Greeting: long, Command: long, Mail: long, Rcpt: long, DataInit: long, DataBlock: long, DataEnd: long}
		set(&tm)
		return tm
	}
	pipelinedHead := []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: ehloPipe}}
	chunkHead := []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: ehloChunk}}
	lockHead := []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: ehloLock}}
	for _, c := range []struct {
		name   string
		tm     Timeouts
		script []exchange
		stage  string // named in the error; "" for the greeting
	}{
		{"greeting", all(func(t *Timeouts) { t.Greeting = short }), []exchange{{stall: true}}, ""},
		{"MAIL pipelined", all(func(t *Timeouts) { t.Mail = short }), append(pipelinedHead,
			exchange{cmd: "MAIL*", stall: true}), "reply to MAIL"},
		{"RCPT pipelined", all(func(t *Timeouts) { t.Rcpt = short }), append(pipelinedHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", stall: true}), "reply to RCPT"},
		{"DATA pipelined", all(func(t *Timeouts) { t.DataInit = short }), append(pipelinedHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", reply: "250 ok\r\n"}, exchange{cmd: "DATA", stall: true}), "reply to DATA"},
		{"end of data", all(func(t *Timeouts) { t.DataEnd = short }), append(pipelinedHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", reply: "250 ok\r\n"}, exchange{cmd: "DATA", reply: "354 go\r\n"},
			exchange{stall: true}), "reply to end of data"},
		{"MAIL with BDAT", all(func(t *Timeouts) { t.Mail = short }), append(chunkHead,
			exchange{cmd: "MAIL*", stall: true}), "reply to MAIL"},
		{"RCPT with BDAT", all(func(t *Timeouts) { t.Rcpt = short }), append(chunkHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", stall: true}), "reply to RCPT"},
		{"BDAT LAST", all(func(t *Timeouts) { t.DataEnd = short }), append(chunkHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", reply: "250 ok\r\n"}, exchange{cmd: "BDAT*", stall: true}), "reply to BDAT"},
		{"RCPT lock step", all(func(t *Timeouts) { t.Rcpt = short }), append(lockHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", stall: true}), "RCPT"},
		{"DATA lock step", all(func(t *Timeouts) { t.DataInit = short }), append(lockHead,
			exchange{cmd: "MAIL*", reply: "250 ok\r\n"}, exchange{cmd: "RCPT*", reply: "250 ok\r\n"}, exchange{cmd: "DATA", stall: true}), "DATA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := play(t, c.script)
			cl := open(t, srv.Addr, c.tm)
			start := time.Now()
			err := cl.Greeting()
			if c.stage != "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := cl.Hello("out.test"); err != nil {
					t.Fatal(err)
				}
				start = time.Now()
				var r Reply
				r, err = cl.Send("b@s.test", "r@x.test", []byte(msgHeader), []byte(msgBody))
				if r.Code != 0 {
					t.Errorf("Send() = %+v; want no reply (fate unknown)", r)
				}
			}
			took := time.Since(start)
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got error %v; want a timeout", err)
			}
			if !strings.Contains(err.Error(), c.stage) {
				t.Errorf("error %q does not name the stage %q", err, c.stage)
			}
			if took > 20*time.Second {
				t.Errorf("gave up after %v; the stage's timeout is %v (the wrong timeout was used)", took, short)
			}
			cl.Close()
			srv.check(t)
		})
	}
}

// TestDataBlockTimeout: a server that stops reading in the middle of the
// message is given up on after the data block timeout, not the end of
// data one.
func TestDataBlockTimeout(t *testing.T) {
	// The scripted server reads whole BDAT payloads: this one reads
	// nothing after EHLO.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(greet))
		buf := make([]byte, 64)
		c.Read(buf) // EHLO
		c.Write([]byte(ehloChunk))
		<-hold // and read nothing more
	}()
	cl := open(t, l.Addr().String(), Timeouts{Command: 5 * time.Second, DataBlock: 200 * time.Millisecond, DataEnd: time.Minute})
	if err := cl.Greeting(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Hello("out.test"); err != nil {
		t.Fatal(err)
	}
	big := []byte(strings.Repeat(strings.Repeat("x", 998)+"\r\n", 16<<10)) // 16 MiB: more than the socket buffers hold
	start := time.Now()
	_, err = cl.Send("b@s.test", "r@x.test", []byte(msgHeader), big)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Send() = %v; want a write timeout", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("gave up after %v; the data block timeout is 200ms", took)
	}
}

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
)

// runSendBenchSink serves SMTP on loopback, discarding messages, until
// stdin closes; it prints its address first and its message count last.
//
// The sink shares the machine's cores with Herald, so it is as cheap as an
// SMTP server can be: it speaks just enough SMTP for a sender that behaves
// (EHLO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT) and answers a pipelined
// group of commands with one write. It checks nothing a real receiver
// would. It offers PIPELINING and CHUNKING, as Gmail and Outlook do.
func runSendBenchSink(stdin io.Reader, stdout io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var count atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSinkConn(c, &count)
		}
	}()
	fmt.Fprintln(stdout, l.Addr().String())
	io.Copy(io.Discard, stdin)
	l.Close()
	fmt.Fprintln(stdout, count.Load())
	return nil
}

func serveSinkConn(c net.Conn, count *atomic.Int64) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 4<<10)
	reply := func(s string) error {
		w.WriteString(s)
		if r.Buffered() > 0 {
			return nil // more of the group is already here: answer it all at once
		}
		return w.Flush()
	}
	if reply("220 sink.bench.test ESMTP\r\n") != nil {
		return
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		verb := line
		if len(verb) > 4 {
			verb = verb[:4]
		}
		switch string(bytes.ToUpper(verb)) {
		case "EHLO":
			err = reply("250-sink.bench.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
		case "BDAT":
			var size int
			var last string
			if n, _ := fmt.Sscanf(string(line[4:]), "%d %s", &size, &last); n < 1 || size < 0 {
				return
			}
			if _, err := r.Discard(size); err != nil {
				return
			}
			if strings.EqualFold(last, "LAST") {
				count.Add(1)
			}
			err = reply("250 2.0.0 Ok\r\n")
		case "HELO":
			err = reply("250 sink.bench.test\r\n")
		case "DATA":
			if err = reply("354 go ahead\r\n"); err != nil {
				return
			}
			if !skipSinkData(r) {
				return
			}
			count.Add(1)
			err = reply("250 2.0.0 Ok: queued\r\n")
		case "QUIT":
			reply("221 2.0.0 Bye\r\n")
			return
		default: // MAIL, RCPT, RSET, NOOP
			err = reply("250 2.0.0 Ok\r\n")
		}
		if err != nil {
			return
		}
	}
}

// skipSinkData reads a message up to its terminating "." line.
func skipSinkData(r *bufio.Reader) bool {
	midLine := false
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			midLine = true // a long line: read on to its end
		case err != nil:
			return false
		case !midLine && len(line) == 3 && line[0] == '.' && line[1] == '\r':
			return true
		default:
			midLine = false
		}
	}
}

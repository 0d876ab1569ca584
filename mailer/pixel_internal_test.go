package mailer

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPadForPixel: a short part whose only image is the pixel is
// lengthened past SpamAssassin's image-only size with a comment before the
// pixel; a part with an image of its own, or a long one, is left alone.
func TestPadForPixel(t *testing.T) {
	pixel := `<img src="https://h.example/t/o/x" width="1" height="1" alt="">`
	short := []byte("<html><body>\r\n<p>Opening hours: Monday at nine · café</p>\r\n" + pixel + "</body></html>")
	got := padForPixel(short)
	size := utf8.RuneCount(got) - bytes.Count(got, []byte("\r\n"))
	if size <= imageOnlyBytes || size > imageOnlyBytes+100 {
		t.Errorf("padded size = %d, want just over %d", size, imageOnlyBytes)
	}
	if !bytes.HasPrefix(got, short[:bytes.Index(short, []byte("<img"))]) || !bytes.HasSuffix(got, []byte("-->\n"+pixel+"</body></html>")) {
		t.Errorf("padForPixel() = %q, want the comment just before the pixel", got)
	}
	own := []byte("<p><img src=\"https://h.example/shop.jpg\"></p>" + pixel)
	if got := padForPixel(own); !bytes.Equal(got, own) {
		t.Errorf("a part with its own image was padded")
	}
	long := []byte("<p>" + strings.Repeat("word ", 700) + "</p>" + pixel)
	if got := padForPixel(long); !bytes.Equal(got, long) {
		t.Errorf("a long part was padded")
	}
}

package authreport_test

import (
	"archive/zip"
	"bytes"
	"fmt"
)

func zipN(n int, b []byte) []byte {
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for i := 0; i < n; i++ {
		w, _ := zw.Create(fmt.Sprintf("r%d.xml", i))
		w.Write(b)
	}
	zw.Close()
	return out.Bytes()
}

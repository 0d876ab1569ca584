package mailer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-msgauth/authres"

	"github.com/herald-mail/herald/models"
)

// PlacementLookup names one seed mailbox and the copy to look for in it.
type PlacementLookup struct {
	// URL is the seed's IMAP URL: imaps://user:password@host:993 or
	// imap://… (STARTTLS required). Its path, if any, is ignored: every
	// folder is searched.
	URL string
	// Token is the value of the copy's X-Herald-Placement header.
	Token string
	// TLSConfig verifies the server. Zero: the system roots and the URL's
	// host name.
	TLSConfig *tls.Config
	// Timeout bounds the connection. Zero: one minute.
	Timeout time.Duration
}

// PlacementFinding is where a copy was found.
type PlacementFinding struct {
	Found     bool
	Placement string // models.PlacementInbox, PlacementSpam or PlacementOther
	Folder    string
	Arrived   time.Time // the server's INTERNALDATE of the copy
	// AuthResults is the topmost Authentication-Results field (the one
	// the receiving server added last); SPF, DKIM and DMARC its verdicts.
	AuthResults      string
	SPF, DKIM, DMARC string
}

// spamFolderNames are the folder names (their last part, in any case)
// that hold spam on servers without SPECIAL-USE.
var spamFolderNames = []string{"spam", "junk", "bulk", "junk e-mail", "junk email", "bulk mail"}

// FindPlacement looks for the copy carrying l.Token in every folder of
// the seed mailbox: the inbox first, then junk folders, then the others
// (an "all mail" folder last, as every Gmail message is also there). A
// copy not found yet is not an error: Found is false.
func FindPlacement(ctx context.Context, l PlacementLookup) (PlacementFinding, error) {
	p, err := NewPoller(nil, PollOptions{URL: l.URL, TLSConfig: l.TLSConfig, Timeout: l.Timeout})
	if err != nil {
		return PlacementFinding{}, err
	}
	c, done, err := p.login(ctx)
	if err != nil {
		return PlacementFinding{}, err
	}
	defer done()
	opts := &imap.ListOptions{}
	if c.Caps().Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	boxes, err := c.List("", "*", opts).Collect()
	if err != nil {
		return PlacementFinding{}, fmt.Errorf("mailer: placement %s: list folders: %w", p.addr, err)
	}
	type folder struct {
		name, placement string
		rank            int
	}
	var folders []folder
	for _, b := range boxes {
		if slices.Contains(b.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(b.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		f := folder{name: b.Mailbox, placement: FolderPlacement(b.Mailbox, b.Delim, b.Attrs), rank: 2}
		switch {
		case f.placement == models.PlacementInbox:
			f.rank = 0
		case f.placement == models.PlacementSpam:
			f.rank = 1
		case slices.Contains(b.Attrs, imap.MailboxAttrAll):
			f.rank = 3
		}
		folders = append(folders, f)
	}
	slices.SortStableFunc(folders, func(a, b folder) int { return a.rank - b.rank })
	for _, f := range folders {
		if _, err := c.Select(f.name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			continue // a folder that vanished or refuses: look in the others
		}
		found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: models.PlacementHeader, Value: l.Token}}}, nil).Wait()
		if err != nil {
			return PlacementFinding{}, fmt.Errorf("mailer: placement %s: search %s: %w", p.addr, f.name, err)
		}
		uids := found.AllUIDs()
		if len(uids) == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Authentication-Results"}, Peek: true}
		msgs, err := c.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil || len(msgs) == 0 {
			return PlacementFinding{}, fmt.Errorf("mailer: placement %s: fetch from %s: %v", p.addr, f.name, err)
		}
		out := PlacementFinding{Found: true, Placement: f.placement, Folder: f.name, Arrived: msgs[0].InternalDate}
		out.AuthResults = firstHeader(msgs[0].FindBodySection(section), "Authentication-Results")
		out.SPF, out.DKIM, out.DMARC = AuthVerdicts(out.AuthResults)
		_ = c.Logout().Wait()
		return out, nil
	}
	_ = c.Logout().Wait()
	return PlacementFinding{}, nil
}

// FolderPlacement sorts a folder: the inbox, spam (the \Junk attribute,
// or a name such as Spam, Junk or Bulk), or another folder.
func FolderPlacement(name string, delim rune, attrs []imap.MailboxAttr) string {
	if strings.EqualFold(name, "INBOX") {
		return models.PlacementInbox
	}
	if slices.Contains(attrs, imap.MailboxAttrJunk) {
		return models.PlacementSpam
	}
	last := name
	if delim != 0 {
		last = name[strings.LastIndexByte(name, byte(delim))+1:]
	}
	if slices.Contains(spamFolderNames, strings.ToLower(last)) {
		return models.PlacementSpam
	}
	return models.PlacementOther
}

// firstHeader returns the first field named key of a header block,
// unfolded.
func firstHeader(raw []byte, key string) string {
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(raw, "\r\n"...)))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	return strings.TrimSpace(h.Get(key))
}

// AuthVerdicts reads the SPF, DKIM and DMARC results of one
// Authentication-Results field (RFC 8601); a method the field does not
// name is "". With several DKIM signatures, a pass wins.
func AuthVerdicts(field string) (spf, dkim, dmarc string) {
	if field == "" {
		return "", "", ""
	}
	_, results, err := authres.Parse(field)
	if err != nil && len(results) == 0 {
		return "", "", ""
	}
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			if spf == "" {
				spf = string(r.Value)
			}
		case *authres.DKIMResult:
			if dkim == "" || r.Value == authres.ResultPass {
				dkim = string(r.Value)
			}
		case *authres.DMARCResult:
			if dmarc == "" {
				dmarc = string(r.Value)
			}
		}
	}
	return spf, dkim, dmarc
}

package models_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestSendingDomainStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const secret = "a server secret of some length!!"
		_, err := s.CreateSendingDomain(ctx, "not a domain", secret, models.SendingDomainOptions{})
		var ve *models.ValidationError
		if !errors.As(err, &ve) || ve.Fields["domain"] == "" {
			t.Fatalf("CreateSendingDomain(bad) = %v, want a ValidationError on domain", err)
		}
		d, err := s.CreateSendingDomain(ctx, "Bücher.Example", secret, models.SendingDomainOptions{Selector: "s1", SPFIncludes: "include:_spf.relay.example"})
		if err != nil {
			t.Fatal(err)
		}
		if d.Domain != "xn--bcher-kva.example" || d.ReturnPathDomain != "bounces.xn--bcher-kva.example" || d.SPFIncludes != "_spf.relay.example" {
			t.Errorf("stored %q, return path %q, includes %q; want punycode and defaults", d.Domain, d.ReturnPathDomain, d.SPFIncludes)
		}
		if _, err := s.CreateSendingDomain(ctx, "BÜCHER.example", secret, models.SendingDomainOptions{}); !errors.Is(err, models.ErrConflict) {
			t.Errorf("duplicate domain = %v, want ErrConflict", err)
		}

		// Never checked: reported as such.
		st, err := s.SendingDomainStatuses(ctx)
		if err != nil || len(st) != 1 || st[0].Checked || st[0].CheckedAt != nil || st[0].DKIM {
			t.Fatalf("SendingDomainStatuses() before a check = %+v, %v", st, err)
		}
		chk := models.DNSCheck{Domain: d.Domain, Records: []models.DNSRecordCheck{
			{DNSRecord: models.DNSRecord{Purpose: "dkim"}, OK: true, State: models.RecordOK},
			{DNSRecord: models.DNSRecord{Purpose: "spf"}, OK: false, State: models.RecordWrong},
			{DNSRecord: models.DNSRecord{Purpose: "dmarc"}, OK: true, State: models.RecordOK},
			{DNSRecord: models.DNSRecord{Purpose: "return-path"}, OK: true, State: models.RecordOK},
		}}
		if err := s.SaveDNSCheck(ctx, d.ID, false, chk.JSON()); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveDNSCheck(ctx, d.ID+100, false, chk.JSON()); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("SaveDNSCheck(missing) = %v, want ErrNotFound", err)
		}
		st, _ = s.SendingDomainStatuses(ctx)
		got := st[0]
		if !got.Checked || got.CheckedAt == nil || time.Since(*got.CheckedAt) > time.Minute || got.OK || !got.DKIM || got.SPF || !got.DMARC || !got.ReturnPath {
			t.Errorf("status after check = %+v; want checked now, DKIM/DMARC/return path pass, SPF fails", got)
		}
		if got.Check == nil || len(got.Check.Records) != 4 || got.Check.Records[1].State != models.RecordWrong {
			t.Errorf("stored check = %+v", got.Check)
		}

		// Rotation: new selector and key, check cleared, old selector kept
		// out, the keys open with the secret.
		if _, err := s.RotateDKIMKey(ctx, d.ID, secret, "s1"); !errors.As(err, &ve) {
			t.Errorf("RotateDKIMKey(same selector) = %v, want a ValidationError", err)
		}
		r, err := s.RotateDKIMKey(ctx, d.ID, secret, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Selector == "s1" || r.RSAPublic == d.RSAPublic || r.DNSCheckedAt != nil {
			t.Errorf("rotated = selector %q, key changed %v, checked %v", r.Selector, r.RSAPublic != d.RSAPublic, r.DNSCheckedAt)
		}
		again, _ := s.SendingDomain(ctx, d.ID)
		if again.Selector != r.Selector || again.RSAPublic != r.RSAPublic || again.DNSReport != "" || again.LastCheck() != nil {
			t.Errorf("stored after rotation = %+v", again)
		}
		if k, err := again.Keys(secret); err != nil || k.Selector != r.Selector {
			t.Errorf("Keys() after rotation = %v", err)
		}
		r2, err := s.RotateDKIMKey(ctx, d.ID, secret, "")
		if err != nil || r2.Selector == r.Selector {
			t.Errorf("second rotation the same day: selector %q after %q, %v; want a new one", r2.Selector, r.Selector, err)
		}
		if _, err := s.RotateDKIMKey(ctx, d.ID+100, secret, ""); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("RotateDKIMKey(missing) = %v, want ErrNotFound", err)
		}
		if err := s.DeleteSendingDomain(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSendingDomain(ctx, d.ID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}
	})
}

func TestDomainRuleStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		seeded, err := s.DomainRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The Go defaults are the migration's seeds, so a reset restores a
		// fresh installation.
		if len(seeded) != len(models.DefaultDomainRules) {
			t.Fatalf("seeded %d rules, DefaultDomainRules has %d", len(seeded), len(models.DefaultDomainRules))
		}
		for i, r := range seeded {
			r.ID, r.UpdatedAt = 0, time.Time{}
			if !reflect.DeepEqual(r, models.DefaultDomainRules[i]) {
				t.Errorf("seeded rule %d = %+v, DefaultDomainRules = %+v", i, r, models.DefaultDomainRules[i])
			}
		}
		r := &models.DomainRule{Name: "google", Domains: "x.example", BackoffMinSeconds: 1, BackoffMaxSeconds: 2}
		if err := s.CreateDomainRule(ctx, r); !errors.Is(err, models.ErrConflict) {
			t.Errorf("CreateDomainRule(taken name) = %v, want ErrConflict", err)
		}
		r.Name = "x"
		if err := s.CreateDomainRule(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.Name = "yahoo"
		if err := s.UpdateDomainRule(ctx, r); !errors.Is(err, models.ErrConflict) {
			t.Errorf("UpdateDomainRule(to a taken name) = %v, want ErrConflict", err)
		}
		def := seeded[len(seeded)-1]
		if err := s.DeleteDomainRule(ctx, def.ID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("DeleteDomainRule(default) = %v, want refusal", err)
		}
		if err := s.ResetDomainRules(ctx); err != nil {
			t.Fatal(err)
		}
		after, _ := s.DomainRules(ctx)
		if len(after) != len(seeded) {
			t.Fatalf("after reset: %d rules", len(after))
		}
		for i, r := range after {
			r.ID, r.UpdatedAt = 0, time.Time{}
			if !reflect.DeepEqual(r, models.DefaultDomainRules[i]) {
				t.Errorf("reset rule %d = %+v", i, r)
			}
		}
	})
}

func TestDomainRuleFormValidation(t *testing.T) {
	base := models.DomainRuleForm{Name: "r", Domains: "a.example", PerSecond: "1", PerMinute: "60", PerHour: "600",
		BackoffMinSeconds: "60", BackoffMaxSeconds: "600"}
	cases := []struct {
		mod   func(*models.DomainRuleForm)
		field string
	}{
		{func(f *models.DomainRuleForm) {}, ""},
		{func(f *models.DomainRuleForm) { f.PerSecond = "NaN" }, "per_second"},
		{func(f *models.DomainRuleForm) { f.PerSecond = "1e9" }, "per_second"},
		{func(f *models.DomainRuleForm) { f.Domains = "" }, "domains"},
		{func(f *models.DomainRuleForm) { f.MXSuffixes = "-bad-.example" }, "mx_suffixes"},
		{func(f *models.DomainRuleForm) { f.BackoffMinSeconds = "0" }, "backoff_min_seconds"},
		{func(f *models.DomainRuleForm) { f.Position = "x" }, "position"},
	}
	for _, c := range cases {
		f := base
		c.mod(&f)
		var r models.DomainRule
		errs := f.Rule(&r)
		if c.field == "" && len(errs) != 0 || c.field != "" && errs[c.field] == "" {
			t.Errorf("Rule(%+v) = %v, want an error on %q only", f, errs, c.field)
		}
	}
}

func TestIPPoolStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		a, b := &models.IPPool{Name: "a"}, &models.IPPool{Name: "b", Strategy: models.PoolWeighted}
		for _, p := range []*models.IPPool{a, b} {
			if err := s.CreateIPPool(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateIPPool(ctx, &models.IPPool{Name: "a"}); !errors.Is(err, models.ErrConflict) {
			t.Errorf("CreateIPPool(taken) = %v", err)
		}
		b.Name = "a"
		if err := s.UpdateIPPool(ctx, b); !errors.Is(err, models.ErrConflict) {
			t.Errorf("UpdateIPPool(to a taken name) = %v", err)
		}
		var ip models.SendingIP
		errs := models.SendingIPForm{Address: "::ffff:192.0.2.7", HELO: "Out.Example.com", Weight: "2", WarmupStart: "2026-01-02", Active: true}.SendingIP(&ip)
		if len(errs) != 0 || ip.Address != "192.0.2.7" || ip.HELO != "out.example.com" || ip.WarmupStart.Format("2006-01-02") != "2026-01-02" {
			t.Fatalf("SendingIPForm.SendingIP() = %+v, %v", ip, errs)
		}
		ip.PoolID = a.ID
		if err := s.AddSendingIP(ctx, &ip); err != nil {
			t.Fatal(err)
		}
		dup := ip
		dup.ID = 0
		if err := s.AddSendingIP(ctx, &dup); !errors.Is(err, models.ErrConflict) {
			t.Errorf("AddSendingIP(duplicate) = %v", err)
		}
		other := models.SendingIP{PoolID: b.ID, Address: "192.0.2.7", Active: true}
		if err := s.AddSendingIP(ctx, &other); err != nil {
			t.Fatalf("the same address in another pool: %v", err)
		}
		paused := models.SendingIP{PoolID: b.ID, Address: "192.0.2.9", Active: false}
		if err := s.AddSendingIP(ctx, &paused); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.SPFAddresses(ctx); !reflect.DeepEqual(got, []string{"192.0.2.7"}) {
			t.Errorf("SPFAddresses() = %v, want the one active address once", got)
		}
		ip.Active, ip.PerSecond = false, 3
		if err := s.UpdateSendingIP(ctx, &ip); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.SendingIP(ctx, ip.ID); got.Active || got.PerSecond != 3 {
			t.Errorf("updated address = %+v", got)
		}
		if act, _ := s.SendingIPs(ctx, a.ID); len(act) != 0 {
			t.Errorf("SendingIPs(a) = %v, want none active", act)
		}
		if err := s.DeleteIPPool(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		all, _ := s.AllSendingIPs(ctx)
		if len(all) != 1 || all[0].ID != ip.ID {
			t.Errorf("addresses after deleting pool b = %+v, want only pool a's", all)
		}
		if err := s.DeleteIPPool(ctx, b.ID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("second DeleteIPPool = %v", err)
		}
	})
}

// TestRuleFormTakesWhatTheTableShows: the rules table shows no limit as
// ∞, so the form takes ∞ (and empty, and 0) as no limit; a word that is
// not a number is still refused.
func TestRuleFormTakesWhatTheTableShows(t *testing.T) {
	f := models.DomainRuleForm{Name: "slow", Domains: "slow.example", PerSecond: "∞", PerMinute: "∞", PerHour: "", MaxConnections: "0",
		MaxPerConnection: "unlimited", BackoffMinSeconds: "60", BackoffMaxSeconds: "600", Position: "5"}
	var r models.DomainRule
	if errs := f.Rule(&r); len(errs) > 0 {
		t.Fatalf("∞ refused: %v", errs)
	}
	if r.PerSecond != 0 || r.PerMinute != 0 || r.PerHour != 0 || r.MaxConnections != 0 || r.MaxPerConnection != 0 {
		t.Errorf("rule = %+v, want no limits", r)
	}
	f.PerMinute, f.Position = "lots", "∞"
	errs := f.Rule(&r)
	if errs["per_minute"] == "" || errs["position"] == "" {
		t.Errorf("errors = %v, want per_minute and position refused", errs)
	}
}

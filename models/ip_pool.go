package models

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// IP pool strategies.
const (
	PoolRoundRobin = "round_robin"
	PoolWeighted   = "weighted"
)

// IPPool is a named set of source addresses a campaign sends from.
type IPPool struct {
	ID        int64
	Name      string
	Strategy  string
	CreatedAt time.Time
	// PausedReason is set while the blocklist rule holds the pool (one of
	// its addresses is listed on a list whose pause rule is on): the
	// engine sends nothing through it. "" means it sends.
	PausedReason string
	PausedAt     *time.Time
}

// Validate normalises the pool and returns a field→message map, empty
// when it may be saved.
func (p *IPPool) Validate() map[string]string {
	errs := map[string]string{}
	p.Name = strings.TrimSpace(p.Name)
	switch {
	case p.Name == "":
		errs["name"] = "Give the pool a name, e.g. marketing."
	case len(p.Name) > 100:
		errs["name"] = "Keep the name under 100 characters."
	}
	if p.Strategy == "" {
		p.Strategy = PoolRoundRobin
	}
	if p.Strategy != PoolRoundRobin && p.Strategy != PoolWeighted {
		errs["strategy"] = "Choose round robin or weighted."
	}
	return errs
}

// SendingIP is one source address: its HELO name, weight in its pool, own
// rate (messages per second, 0 unlimited) and warm-up start (nil: warmed).
type SendingIP struct {
	ID          int64
	PoolID      int64
	Address     string
	HELO        string `gorm:"column:helo"`
	Weight      int
	PerSecond   float64
	WarmupStart *time.Time
	Active      bool
	CreatedAt   time.Time
}

// SendingIPForm is the dashboard's form for a sending address, as typed.
type SendingIPForm struct {
	Address, HELO, Weight, PerSecond, WarmupStart string
	Active                                        bool
}

// SendingIP parses and validates the form into ip (PoolID and ID are the
// caller's) and returns a field→message map, empty when it may be saved.
func (f SendingIPForm) SendingIP(ip *SendingIP) map[string]string {
	errs := map[string]string{}
	addr, err := netip.ParseAddr(strings.TrimSpace(f.Address))
	switch {
	case err != nil || addr.Zone() != "":
		errs["address"] = fmt.Sprintf("%q is not an IP address; enter one such as 192.0.2.10 or 2001:db8::10.", f.Address)
	case addr.IsUnspecified() || addr.IsMulticast():
		errs["address"] = "Enter the address of one of this machine's interfaces, not " + addr.String() + "."
	default:
		ip.Address = addr.Unmap().String()
	}
	ip.HELO = ""
	if strings.TrimSpace(f.HELO) != "" {
		h, problem := normalizeHostname(f.HELO, false)
		switch {
		case problem != "":
			errs["helo"] = "HELO name: " + problem
		case !strings.Contains(h, "."):
			errs["helo"] = "The HELO name must be a full host name (e.g. out1.example.com) whose A record is this address."
		default:
			ip.HELO = h
		}
	}
	ip.Weight = 1
	if s := strings.TrimSpace(f.Weight); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			errs["weight"] = "The weight is a whole number from 1 to 1000 (share of traffic in a weighted pool)."
		}
		ip.Weight = n
	}
	ip.PerSecond = 0
	if s := strings.TrimSpace(f.PerSecond); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n < 0 || n > 10000 {
			errs["per_second"] = "The rate is messages per second from 0 (unlimited) to 10000, e.g. 5 or 0.5."
		}
		ip.PerSecond = n
	}
	ip.WarmupStart = nil
	if s := strings.TrimSpace(f.WarmupStart); s != "" {
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			errs["warmup_start"] = "Enter the warm-up start as a date (YYYY-MM-DD), or leave it empty for a warmed-up address."
		} else {
			t = t.UTC()
			ip.WarmupStart = &t
		}
	}
	ip.Active = f.Active
	return errs
}

// CreateIPPool stores a pool; ErrConflict when the name is taken.
func (s *Store) CreateIPPool(ctx context.Context, p *IPPool) error {
	if p.Strategy == "" {
		p.Strategy = PoolRoundRobin
	}
	p.CreatedAt = dbNow()
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := poolNameFree(tx, p.Name, 0); err != nil {
			return err
		}
		return tx.Create(p).Error
	})
	if err != nil {
		return fmt.Errorf("models: create IP pool %q: %w", p.Name, err)
	}
	return nil
}

func poolNameFree(tx *gorm.DB, name string, except int64) error {
	var n int64
	if err := tx.Model(&IPPool{}).Where("name = ? AND id <> ?", name, except).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return ErrConflict
	}
	return nil
}

// UpdateIPPool renames a pool or changes its strategy; ErrConflict when
// the name is taken, ErrNotFound when the pool is gone.
func (s *Store) UpdateIPPool(ctx context.Context, p *IPPool) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := poolNameFree(tx, p.Name, p.ID); err != nil {
			return err
		}
		res := tx.Model(&IPPool{}).Where("id = ?", p.ID).Updates(map[string]any{"name": p.Name, "strategy": p.Strategy})
		if res.Error == nil && res.RowsAffected == 0 {
			return ErrNotFound
		}
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("models: update IP pool %d: %w", p.ID, err)
	}
	return nil
}

// DeleteIPPool removes a pool and its addresses; campaigns that used it
// send from the default address afterwards.
func (s *Store) DeleteIPPool(ctx context.Context, id int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		// Explicitly, not by cascade: SQLite enforces foreign keys only
		// where the connection enabled them.
		if err := tx.Exec("DELETE FROM sending_ips WHERE pool_id = ?", id).Error; err != nil {
			return err
		}
		res := tx.Exec("DELETE FROM ip_pools WHERE id = ?", id)
		if res.Error == nil && res.RowsAffected == 0 {
			return ErrNotFound
		}
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("models: delete IP pool %d: %w", id, err)
	}
	return nil
}

// IPPools returns every pool by name.
func (s *Store) IPPools(ctx context.Context) ([]IPPool, error) {
	var out []IPPool
	if err := s.conn(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: IP pools: %w", err)
	}
	return out, nil
}

// IPPool returns one pool.
func (s *Store) IPPool(ctx context.Context, id int64) (*IPPool, error) {
	var p IPPool
	if err := s.conn(ctx).First(&p, id).Error; err != nil {
		return nil, fmt.Errorf("models: IP pool %d: %w", id, notFound(err))
	}
	return &p, nil
}

// CampaignsUsingIPPool counts the campaigns not yet finished or cancelled
// that send from a pool.
func (s *Store) CampaignsUsingIPPool(ctx context.Context, id int64) (int64, error) {
	var n int64
	err := s.conn(ctx).Table("campaigns").Where("ip_pool_id = ? AND status NOT IN ?", id, []string{"finished", "cancelled"}).Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("models: campaigns using IP pool %d: %w", id, err)
	}
	return n, nil
}

// AddSendingIP adds an address to a pool; ErrConflict when the pool has it.
func (s *Store) AddSendingIP(ctx context.Context, ip *SendingIP) error {
	ip.CreatedAt = dbNow()
	if ip.Weight <= 0 {
		ip.Weight = 1
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := ipFree(tx, ip); err != nil {
			return err
		}
		return tx.Create(ip).Error
	})
	if err != nil {
		return fmt.Errorf("models: add sending IP %s: %w", ip.Address, err)
	}
	return nil
}

func ipFree(tx *gorm.DB, ip *SendingIP) error {
	var n int64
	if err := tx.Model(&SendingIP{}).Where("pool_id = ? AND address = ? AND id <> ?", ip.PoolID, ip.Address, ip.ID).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return ErrConflict
	}
	return nil
}

// UpdateSendingIP saves an address's settings (not its pool).
func (s *Store) UpdateSendingIP(ctx context.Context, ip *SendingIP) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := ipFree(tx, ip); err != nil {
			return err
		}
		res := tx.Model(&SendingIP{}).Where("id = ? AND pool_id = ?", ip.ID, ip.PoolID).Updates(map[string]any{
			"address": ip.Address, "helo": ip.HELO, "weight": max(1, ip.Weight), "per_second": ip.PerSecond,
			"warmup_start": ip.WarmupStart, "active": ip.Active,
		})
		if res.Error == nil && res.RowsAffected == 0 {
			return ErrNotFound
		}
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("models: update sending IP %d: %w", ip.ID, err)
	}
	return nil
}

// SendingIP returns one address.
func (s *Store) SendingIP(ctx context.Context, id int64) (*SendingIP, error) {
	var ip SendingIP
	if err := s.conn(ctx).First(&ip, id).Error; err != nil {
		return nil, fmt.Errorf("models: sending IP %d: %w", id, notFound(err))
	}
	return &ip, nil
}

// SendingIPs returns a pool's active addresses.
func (s *Store) SendingIPs(ctx context.Context, poolID int64) ([]SendingIP, error) {
	var out []SendingIP
	if err := s.conn(ctx).Where("pool_id = ? AND active = ?", poolID, true).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: sending IPs of pool %d: %w", poolID, err)
	}
	return out, nil
}

// AllSendingIPs returns every address of every pool, active or not, by
// pool and id.
func (s *Store) AllSendingIPs(ctx context.Context) ([]SendingIP, error) {
	var out []SendingIP
	if err := s.conn(ctx).Order("pool_id, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: sending IPs: %w", err)
	}
	return out, nil
}

// SPFAddresses returns the distinct active sending addresses of all
// pools, which every sending domain's SPF record must allow.
func (s *Store) SPFAddresses(ctx context.Context) ([]string, error) {
	var out []string
	if err := s.conn(ctx).Model(&SendingIP{}).Where("active = ?", true).Distinct("address").Order("address").Pluck("address", &out).Error; err != nil {
		return nil, fmt.Errorf("models: SPF addresses: %w", err)
	}
	return out, nil
}

// DeleteSendingIP removes an address from its pool.
func (s *Store) DeleteSendingIP(ctx context.Context, id int64) error {
	res := s.conn(ctx).Exec("DELETE FROM sending_ips WHERE id = ?", id)
	if res.Error != nil {
		return fmt.Errorf("models: delete sending IP %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: delete sending IP %d: %w", id, ErrNotFound)
	}
	return nil
}

// Form is the address as the dashboard's form shows it.
func (ip *SendingIP) Form() SendingIPForm {
	f := SendingIPForm{Address: ip.Address, HELO: ip.HELO, Weight: strconv.Itoa(ip.Weight),
		PerSecond: strconv.FormatFloat(ip.PerSecond, 'f', -1, 64), Active: ip.Active}
	if ip.WarmupStart != nil {
		f.WarmupStart = ip.WarmupStart.UTC().Format("2006-01-02")
	}
	return f
}

package models

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Template kinds.
const (
	TemplateCampaign      = "campaign"
	TemplateTransactional = "transactional"
)

// Template is the body of a campaign or of a transactional message: a subject
// (text/template), an HTML body (html/template) and an optional text body
// (text/template; generated from the HTML when empty). The data the
// templates see is documented in package mailer (render.go).
type Template struct {
	ID        int64
	Kind      string
	Name      string
	Subject   string
	HTML      string `gorm:"column:html"`
	Text      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Validate returns a field→message map, empty when the template may be saved.
func (t *Template) Validate() map[string]string {
	errs := map[string]string{}
	t.Name = strings.TrimSpace(t.Name)
	if t.Name == "" {
		errs["name"] = "Give the template a name."
	}
	if t.Kind != TemplateCampaign && t.Kind != TemplateTransactional {
		errs["kind"] = "Choose campaign or transactional."
	}
	if strings.TrimSpace(t.HTML) == "" && strings.TrimSpace(t.Text) == "" {
		errs["html"] = "Write an HTML or a text body."
	}
	checkTemplateSizes(t, errs)
	return errs
}

// Template returns one template.
func (s *Store) Template(ctx context.Context, id int64) (*Template, error) {
	var t Template
	if err := s.conn(ctx).First(&t, id).Error; err != nil {
		return nil, fmt.Errorf("models: template %d: %w", id, notFound(err))
	}
	return &t, nil
}

// TemplateByName returns the template of kind named name.
func (s *Store) TemplateByName(ctx context.Context, kind, name string) (*Template, error) {
	var t Template
	if err := s.conn(ctx).Where("kind = ? AND name = ?", kind, name).First(&t).Error; err != nil {
		return nil, fmt.Errorf("models: template %s %q: %w", kind, name, notFound(err))
	}
	return &t, nil
}

// Templates returns the templates of one kind ("" for all), by name.
func (s *Store) Templates(ctx context.Context, kind string) ([]Template, error) {
	q := s.conn(ctx).Order("lower(name), id")
	if kind != "" {
		q = q.Where("kind = ?", kind)
	}
	var out []Template
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: templates: %w", err)
	}
	return out, nil
}

// CreateTemplate stores a new template; ErrConflict when the name is taken
// for its kind.
func (s *Store) CreateTemplate(ctx context.Context, t *Template) error {
	if err := invalid(t.Validate()); err != nil {
		return fmt.Errorf("models: create template: %w", err)
	}
	if _, err := s.TemplateByName(ctx, t.Kind, t.Name); err == nil {
		return fmt.Errorf("models: create template %q: %w", t.Name, ErrConflict)
	}
	t.CreatedAt, t.UpdatedAt = dbNow(), dbNow()
	if err := s.conn(ctx).Create(t).Error; err != nil {
		return fmt.Errorf("models: create template: %w", err)
	}
	return nil
}

// UpdateTemplate saves a template's name, subject and bodies.
func (s *Store) UpdateTemplate(ctx context.Context, t *Template) error {
	if err := invalid(t.Validate()); err != nil {
		return fmt.Errorf("models: update template %d: %w", t.ID, err)
	}
	res := s.conn(ctx).Model(&Template{}).Where("id = ?", t.ID).Updates(map[string]any{
		"name": t.Name, "kind": t.Kind, "subject": t.Subject, "html": t.HTML, "text": t.Text, "updated_at": dbNow(),
	})
	if res.Error != nil {
		return fmt.Errorf("models: update template %d: %w", t.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: update template %d: %w", t.ID, ErrNotFound)
	}
	return nil
}

// DeleteTemplate removes a template; campaigns using it keep running on
// nothing (their template_id becomes NULL), so the web layer should refuse
// to delete a template in use.
func (s *Store) DeleteTemplate(ctx context.Context, id int64) error {
	if err := s.conn(ctx).Exec("DELETE FROM templates WHERE id = ?", id).Error; err != nil {
		return fmt.Errorf("models: delete template %d: %w", id, err)
	}
	return nil
}

// TemplateUsage returns how many campaigns not yet finished or cancelled
// use a template (a template in use must not be deleted).
func (s *Store) TemplateUsage(ctx context.Context, id int64) (int64, error) {
	var n int64
	err := s.conn(ctx).Raw("SELECT COUNT(*) FROM campaigns WHERE template_id = ? AND status NOT IN ('finished', 'cancelled')", id).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("models: usage of template %d: %w", id, err)
	}
	return n, nil
}

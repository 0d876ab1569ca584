package web

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/herald-mail/herald/models"
)

// TestClassifyValidationError: a store's field errors reach the user as a
// 422 naming the fields, however deeply wrapped, never as a 500.
func TestClassifyValidationError(t *testing.T) {
	err := fmt.Errorf("create domain: %w", &models.ValidationError{Fields: map[string]string{"domain": "Use a domain name such as example.com."}})
	ue := classify(err)
	if ue.Code != http.StatusUnprocessableEntity || ue.Fields["domain"] == "" {
		t.Errorf("classify(ValidationError) = %+v, want 422 with the domain field", ue)
	}
}

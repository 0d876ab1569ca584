package mailer

import "testing"

func TestIsSlowDown(t *testing.T) {
	tests := []struct {
		r    Reply
		want bool
	}{
		{Reply{Code: 421, Enhanced: "4.7.0", Text: "Try again later, closing connection."}, true},
		{Reply{Code: 451, Enhanced: "4.7.28", Text: "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited."}, true},
		{Reply{Code: 451, Text: "4.7.500 Server busy. Please try again later from [1.2.3.4]. (S77714) [AS] Throttling"}, true},
		{Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary local problem"}, false},
		{Reply{Code: 452, Enhanced: "4.2.2", Text: "Mailbox full"}, false},
		{Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user"}, false},
		{Reply{Code: 250, Text: "OK"}, false},
	}
	for _, tt := range tests {
		if got := isSlowDown(tt.r); got != tt.want {
			t.Errorf("isSlowDown(%d %s %q) = %v, want %v", tt.r.Code, tt.r.Enhanced, tt.r.Text, got, tt.want)
		}
	}
}

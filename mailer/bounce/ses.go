package bounce

import (
	"encoding/json"
	"strings"
)

// sesNotification is the JSON that Amazon SES publishes, through SNS, for a
// bounce or complaint; SNS can deliver it by email.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	Bounce           struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		ReportingMTA      string `json:"reportingMTA"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			Action         string `json:"action"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint struct {
		FeedbackType         string `json:"complaintFeedbackType"`
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Delivery struct {
		Recipients []string `json:"recipients"`
	} `json:"delivery"`
	Mail struct {
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
}

// sesJSON returns the SES notification in the message's text, if any.
func sesJSON(m *msg) (*sesNotification, bool) {
	for _, t := range m.texts {
		if !strings.Contains(t, "notificationType") {
			continue
		}
		// Mail transport wraps long lines; JSON has no newlines of its own.
		t = strings.NewReplacer("\r", "", "\n", "").Replace(t)
		if i := strings.Index(t, `{"notificationType"`); i >= 0 {
			var n sesNotification
			if err := json.NewDecoder(strings.NewReader(t[i:])).Decode(&n); err == nil {
				return &n, true
			}
		}
		// Raw SNS delivery wraps the notification in an envelope.
		var env struct{ Message string }
		if i := strings.Index(t, "{"); i >= 0 && json.NewDecoder(strings.NewReader(t[i:])).Decode(&env) == nil {
			var n sesNotification
			if err := json.Unmarshal([]byte(env.Message), &n); err == nil && n.NotificationType != "" {
				return &n, true
			}
		}
	}
	return nil, false
}

// parseSES turns an SES notification into verdicts.
func parseSES(n *sesNotification, rep *Report) {
	if id := strings.Trim(n.Mail.CommonHeaders.MessageID, "<>"); id != "" && rep.MessageID == "" {
		rep.MessageID = id
	}
	switch strings.ToLower(n.NotificationType) {
	case "bounce":
		rep.ReportingMTA = afterType(n.Bounce.ReportingMTA)
		for _, r := range n.Bounce.BouncedRecipients {
			diag := afterType(r.DiagnosticCode)
			status := normStatus(r.Status)
			if status == "" && replyCode(diag) == 0 && strings.EqualFold(n.Bounce.BounceType, "Transient") {
				status = "4.0.0"
			}
			v := verdictOf(signal{
				source: "ses", rcpt: strings.ToLower(r.EmailAddress), code: replyCode(diag), status: status,
				action: strings.ToLower(r.Action), diag: diag, reportingMTA: rep.ReportingMTA,
				mtaCategory: sesSubTypes[strings.ToLower(n.Bounce.BounceSubType)],
			}, true)
			rep.Recipients = append(rep.Recipients, v)
		}
	case "complaint":
		rep.FeedbackType = strings.ToLower(n.Complaint.FeedbackType)
		if rep.FeedbackType == "" {
			rep.FeedbackType = "abuse"
		}
		var rcpts []string
		for _, r := range n.Complaint.ComplainedRecipients {
			rcpts = append(rcpts, strings.ToLower(r.EmailAddress))
		}
		addComplaints(rep, rcpts)
	case "delivery":
		for _, r := range n.Delivery.Recipients {
			rep.Recipients = append(rep.Recipients, Verdict{Kind: KindNotBounce, Recipient: strings.ToLower(r),
				Rule: "R1", Reason: "SES reports the message as delivered"})
		}
	}
}

// sesSubTypes maps SES's own bounce sub-types to the class of reason they
// name; like a reporting MTA's category, they count as the words when the
// diagnostic names none.
var sesSubTypes = map[string]Category{
	"noemail":            CategoryUserUnknown,
	"mailboxfull":        CategoryMailboxFull,
	"messagetoolarge":    CategoryMessageTooBig,
	"contentrejected":    CategoryPolicyBlock,
	"attachmentrejected": CategoryPolicyBlock,
}

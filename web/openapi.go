package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

// The OpenAPI 3.0 description of /api/v1, served at
// /api/v1/openapi.json. It is built here, in one place: a path is one
// line of apiOperations, a body or answer one entry of apiSchemas. Tests
// hold it to the route table both ways (every /api/v1 route described,
// nothing described that is not served) and walk every path against the
// real server, validating each answer against it (openapi_test.go).

// schema is a JSON Schema object of the document.
type schema = map[string]any

func ref(name string) schema { return schema{"$ref": "#/components/schemas/" + name} }
func str() schema            { return schema{"type": "string"} }
func strEnum(v ...string) schema {
	return schema{"type": "string", "enum": v}
}
func dateTime() schema { return schema{"type": "string", "format": "date-time"} }
func integer() schema  { return schema{"type": "integer", "format": "int64"} }
func number() schema   { return schema{"type": "number"} }
func boolean() schema  { return schema{"type": "boolean"} }
func array(items schema) schema {
	return schema{"type": "array", "items": items}
}

// describe is s with a description.
func describe(s schema, text string) schema { return with(s, schema{"description": text}) }

// null makes s nullable (a Go pointer or a nil slice).
func null(s schema) schema {
	out := schema{"nullable": true}
	for k, v := range s {
		out[k] = v
	}
	if r, ok := s["$ref"]; ok { // siblings of $ref are ignored in 3.0
		delete(out, "$ref")
		out["allOf"] = []schema{{"$ref": r}}
	}
	return out
}

// obj is a closed object: every property is required except those
// named in optional (fields Go leaves out when empty), and no other
// property may appear.
func obj(props schema, optional ...string) schema {
	var req []string
	for k := range props {
		if !contains(optional, k) {
			req = append(req, k)
		}
	}
	sort.Strings(req)
	out := schema{"type": "object", "properties": props, "additionalProperties": false}
	if len(req) > 0 {
		out["required"] = req
	}
	return out
}

// input is an object a client sends: no property required unless named,
// unknown ones refused (decodeJSON).
func input(props schema, required ...string) schema {
	out := schema{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// with is props plus more.
func with(props schema, more schema) schema {
	out := schema{}
	for k, v := range props {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

var (
	counterProps = schema{"queued": integer(), "sending": integer(), "sent": integer(), "deferred": integer(),
		"bounced": integer(), "failed": integer(), "suppressed": integer()}
	eventCountProps = schema{"total": integer(), "human": integer(), "unique": integer(), "unique_human": integer()}
	dnsRecordProps  = schema{"type": strEnum("TXT", "MX", "CNAME"), "name": str(), "value": str(), "purpose": str(),
		"incomplete": boolean(), "note": str()}
	domainStatusProps = schema{"id": integer(), "domain": str(), "checked": boolean(), "checked_at": null(dateTime()),
		"ok": boolean(), "dkim": boolean(), "spf": boolean(), "dmarc": boolean(), "return_path": boolean()}
	ruleProps = schema{"name": str(), "domains": str(), "mx_suffixes": str(), "per_second": number(), "per_minute": integer(),
		"per_hour": integer(), "max_connections": integer(), "max_per_connection": integer(), "backoff_min_seconds": integer(),
		"backoff_max_seconds": integer(), "position": integer(), "require_tls": boolean()}
)

// A campaign in answers, and what creating or changing one takes. An A/B
// test (or any new field) is one more entry here, and in
// campaignOptional when Go leaves it out when empty.
var (
	campaignProps = schema{"id": integer(), "name": str(), "template_id": null(integer()), "subject": str(),
		"preheader": describe(str(), "The preview text inboxes show after the subject."),
		"html":      describe(str(), "The body, HTML or Markdown (format); one campaign's answer only, not lists."),
		"text":      describe(str(), "The text part as written; empty: derived from the HTML when sent."),
		"text_derived": describe(boolean(), "No text part was written: Herald derives it from the HTML. "+
			"In one campaign's answer only."),
		"format":    strEnum(models.FormatHTML, models.FormatMarkdown),
		"from_name": str(), "from_email": str(), "reply_to": str(), "status": str(), "track_opens": boolean(),
		"track_clicks": boolean(), "scheduled_at": null(dateTime()), "started_at": null(dateTime()),
		"finished_at": null(dateTime()), "lists": array(integer()), "counters": obj(counterProps),
		"segments":         describe(array(integer()), "Segments sent to, besides the lists."),
		"exclude_lists":    describe(array(integer()), "Lists whose live members are left out."),
		"exclude_segments": describe(array(integer()), "Segments whose people are left out."),
		"ab_test":          ref("ABTest"),
		"local_send_at":    describe(str(), "HH:MM: each subscriber gets the message at that time in their own zone."),
		"tz_attribute":     describe(str(), "The subscriber attribute holding their IANA time zone."),
		"tz_default":       describe(str(), "The zone of subscribers without a valid one; empty: UTC."),
		"tz_invalid":       describe(integer(), "Recipients whose zone attribute was not a zone Herald knows (they got tz_default)."),
		"pause_reason": describe(str(), "Why automatic protection paused the campaign (complaint, hard-bounce or deferral rate), "+
			"with what to check; absent when a person paused it or it is not paused."),
	}
	campaignOptional = []string{"pause_reason", "lists", "segments", "exclude_lists", "exclude_segments", "html", "text", "text_derived",
		"local_send_at", "tz_attribute", "tz_default", "tz_invalid", "ab_test"}
	campaignUpdateProps = schema{"name": str(), "subject": str(), "preheader": str(),
		"html": describe(str(), "The body; left out on create: the template's."), "text": describe(str(), "Empty: derived from the HTML."),
		"format": strEnum(models.FormatHTML, models.FormatMarkdown), "from_name": str(), "from_email": str(),
		"reply_to": str(), "lists": array(integer()), "track_opens": boolean(), "track_clicks": boolean(), "utm": boolean(),
		"segments":         describe(array(integer()), "Segments to send to, besides (or instead of) lists: the audience is lists and/or segments."),
		"exclude_lists":    describe(array(integer()), "Leave out the live members of these lists."),
		"exclude_segments": describe(array(integer()), "Leave out the people of these segments."),
		"ab_test":          describe(ref("ABTestInput"), `The A/B test; {"variants": []} removes it, an update without it leaves it alone.`)}
	campaignInputProps = with(campaignUpdateProps, schema{"template_id": integer(), "transport": str(), "scheduled_at": dateTime(),
		"local_send_at": describe(str(), "HH:MM, 24-hour clock: deliver at that local time in each subscriber's zone."),
		"tz_attribute":  str(), "tz_default": describe(str(), "An IANA zone such as Europe/Paris.")})

	// An A/B test's variants and settings (api_abtest.go).
	abVariantProps = schema{"idx": integer(), "label": str(), "subject": str(), "from_name": str(), "preheader": str(), "html": str()}
	abInputProps   = schema{"share": describe(integer(), "Percent of the audience in the test."), "metric": strEnum("opens", "clicks", "cto"),
		"wait_seconds": integer(), "manual": describe(boolean(), "The marketer picks the winner (POST /campaigns/{id}/winner).")}

	automationProps = schema{"name": str(), "trigger": strEnum("list_confirmed", "list_subscribed", "api", "segment", "campaign_event", "attribute_changed", "anniversary"), "list_id": null(integer()),
		"trigger_segment_id":  describe(null(integer()), "segment: people who enter this segment after activation enter (those in it at activation never do)."),
		"trigger_campaign_id": describe(null(integer()), "campaign_event: the campaign whose events let people in."),
		"trigger_event":       describe(strEnum("", "opened", "clicked", "not_opened"), "campaign_event: opened it, clicked (trigger_url or any link), or did not open nor click within trigger_days of its sending."),
		"trigger_url":         str(),
		"trigger_days":        describe(integer(), "campaign_event not_opened: the days to open it; anniversary: the days before the anniversary (0 on the day)."),
		"trigger_attribute":   describe(str(), "attribute_changed: the attribute; people whose value changes after activation enter (once). anniversary: the date attribute (1990-07-14 or 07-14); people enter every year, a run per year, 29 February on 28 February in other years, on the automation's list (any list when none)."),
		"trigger_time":        describe(str(), "anniversary: HH:MM on the subscriber's clock (tz_attribute, tz_default); empty is 09:00."),
		"trigger_value":       describe(null(str()), "attribute_changed: only a change to this value lets people in (null: any change)."),
		"exit_attribute":      str(), "exit_value": describe(str(), "Leave once exit_attribute reads this value (checked before every step)."),
		"tz_attribute": describe(str(), "Attribute holding the IANA time zone waits count in."), "tz_default": str(),
		"from_name": str(), "from_email": str(), "test_wait_seconds": integer()}
	stepProps = schema{"kind": strEnum("send", "wait", "branch", "exit", "list_add", "list_remove", "set_attribute", "webhook"), "subject": str(), "html": str(), "text": str(),
		"wait_days": integer(), "wait_seconds": integer(), "wait_until": describe(str(), "HH:MM on the subscriber's clock."), "wait_weekday": integer(),
		"cond": strEnum("", "clicked", "opened", "attribute", "segment"), "cond_step": integer(), "cond_key": str(), "cond_value": str(),
		"then_step": describe(integer(), "0 the next step, -1 the end, else a position."), "else_step": integer(),
		"segment_id":     describe(null(integer()), "A segment branch: true for the people in the segment when they reach the step."),
		"target_list_id": describe(null(integer()), "list_add: put them on this list (confirmed; one who unsubscribed from it stays so); list_remove: unsubscribe them from it. Both are written to the consent ledger."),
		"attr_key":       describe(str(), "set_attribute: the attribute to set."), "attr_value": describe(str(), "set_attribute: its value (text)."),
		"webhook_id": describe(null(integer()), "webhook: the outgoing webhook sent one signed automation.step event per person (data: automation_id, automation, version, step, subscriber_id, email, test).")}

	// A segment's conditions (models.Conditions): groups combined by
	// match, each of conditions combined by its match.
	segmentConditionProps = schema{"field": segmentFieldEnum(), "op": segmentOpEnum(), "key": str(), "value": str(), "value2": str(),
		"list_id": integer(), "status": str(), "days": integer(), "count": integer()}
	segmentConditionOptional = []string{"key", "value", "value2", "list_id", "status", "days", "count"}

	webhookProps = schema{"id": integer(), "url": str(), "events": array(strEnum(models.WebhookEvents...)), "enabled": boolean(),
		"disabled_reason": describe(str(), "Why Herald turned it off (the receiver answered 410 Gone)."), "created_at": dateTime()}
)

// apiSchemas are the document's named schemas.
var apiSchemas = map[string]schema{
	"Error": obj(schema{"error": obj(schema{
		"code": str(), "message": str(), "request_id": str(),
		"fields": schema{"type": "object", "additionalProperties": str()},
	}, "fields")}),

	"List": obj(schema{"id": integer(), "name": str(), "description": str(), "optin": strEnum("single", "double"),
		"visibility": strEnum("public", "private"), "confirmed": integer(), "unconfirmed": integer(),
		"unsubscribed": integer(), "created_at": dateTime()}),
	"ListInput": input(schema{"name": str(), "description": str(), "optin": strEnum("single", "double"),
		"visibility": strEnum("public", "private")}, "name"),

	"Subscriber": obj(schema{"id": integer(), "email": str(), "name": str(), "status": str(),
		"attributes": schema{"type": "object"},
		"lists":      array(obj(schema{"list_id": integer(), "name": str(), "status": str()})),
		"created_at": dateTime()}, "attributes", "lists"),
	"SubscriberInput": input(schema{"email": str(), "name": str(), "attributes": schema{"type": "object"},
		"lists": array(integer()), "status": strEnum("confirmed", "unconfirmed"), "lawful_basis": str()}, "email"),
	"SubscriptionInput": input(schema{"status": strEnum("confirmed", "unconfirmed", "unsubscribed"), "lawful_basis": str()}),

	"Template": obj(schema{"id": integer(), "kind": strEnum("campaign", "transactional"), "name": str(), "subject": str(),
		"html": str(), "text": str(), "updated_at": dateTime()}),
	"TemplateInput": input(schema{"kind": strEnum("campaign", "transactional"), "name": str(), "subject": str(),
		"html": str(), "text": str()}, "name"),

	"Campaign": obj(campaignProps, campaignOptional...),
	"CampaignInput": describe(input(campaignInputProps, "name", "template_id", "from_email"),
		"The audience is lists and/or segments, minus exclude_lists and exclude_segments: at least one list or segment."),
	"CampaignUpdate": describe(input(campaignUpdateProps),
		"The fields to change; those left out keep their value. Drafts and scheduled campaigns only."),
	"DNSOverrideInput": input(schema{"reason": str()}, "reason"),

	"ABTestInput": input(with(abInputProps, schema{"variants": describe(array(input(abVariantProps)),
		"Two to five variants; a field left empty is the campaign's own.")})),
	"ABTest": obj(with(abInputProps, schema{"variants": array(obj(abVariantProps)), "test_sent_at": null(dateTime()), "decide_at": dateTime(),
		"winner": null(integer()), "decided_at": null(dateTime()), "decided_by": str(), "held": integer(),
		"analysis": obj(schema{"metric": str(), "best": integer(), "runner_up": integer(), "z": number(), "p": number(), "significant": boolean(), "verdict": str(),
			"variants": array(obj(schema{"idx": integer(), "label": str(), "sent": integer(), "opens": integer(), "clicks": integer(),
				"trials": integer(), "successes": integer(), "rate": number(), "low": number(), "high": number()}))})}),
		"decide_at", "decided_by", "analysis"),
	"ABWinnerInput": input(schema{"variant": describe(integer(), "The variant's idx; 0: the best by the test's metric.")}),

	"Automation": obj(with(automationProps, schema{"id": integer(), "status": strEnum("draft", "active", "paused"),
		"version":      describe(integer(), "Counts the edits of the steps made once people had entered."),
		"activated_at": null(dateTime()), "created_at": dateTime(), "updated_at": dateTime(),
		"steps": array(obj(with(stepProps, schema{"position": integer(), "campaign_id": null(integer())})))})),
	"AutomationInput": describe(input(with(automationProps, schema{
		"steps":   array(input(with(stepProps, schema{"wait_weekday": describe(integer(), "0 (Sunday) to 6; left out: any day.")}), "kind")),
		"status":  strEnum("active", "paused"),
		"on_edit": describe(strEnum("continue", "finish"), "When the steps change after people entered: they continue on the new version from their current step (the default), or finish the version they are on.")}),
		"name", "trigger", "from_email"),
		"A trigger and ordered steps (at least one on create); see the README's Automations section. PUT without steps keeps them."),
	"AutomationEnter": input(schema{"subscriber_ids": array(integer()), "emails": array(str()),
		"test": describe(boolean(), "A test run: every wait lasts the automation's test_wait_seconds.")}),
	"AutomationExit": input(schema{"subscriber_ids": array(integer()), "emails": array(str()),
		"reason": describe(str(), "Recorded as the run's exit reason; default \"exit by API\".")}),
	"AutomationExited": obj(schema{"exited": describe(integer(), "People taken out; those not inside (or no longer) are not counted."),
		"unknown": describe(array(str()), "Addresses that are no subscriber.")}),
	"AutomationEntered": obj(schema{"entered": describe(integer(), "People who entered; those inside already, or who were, stay as they are."),
		"unknown": describe(array(str()), "Addresses that are no subscriber.")}),
	"AutomationStepFigures": obj(schema{"position": integer(), "kind": str(), "waiting": integer(), "passed": integer(), "queued": integer(),
		"sent": integer(), "failed": integer(), "suppressed": integer(), "opened": integer(), "clicked": integer(), "unsubscribed": integer()}),

	"Segment": obj(schema{"id": integer(), "name": str(), "conditions": ref("SegmentConditions"), "created_at": dateTime(), "updated_at": dateTime()}),
	"SegmentConditions": obj(schema{"match": strEnum("all", "any"), "groups": null(array(obj(schema{"match": strEnum("all", "any"),
		"conditions": null(array(obj(segmentConditionProps, segmentConditionOptional...)))})))}),
	"SegmentInput": input(schema{"name": str(), "conditions": describe(input(schema{"match": strEnum("all", "any"),
		"groups": array(input(schema{"match": strEnum("all", "any"), "conditions": array(input(segmentConditionProps, "field", "op"))}))}),
		"match all (AND) or any (OR) of the groups, each all or any of its conditions; see the README's Segments section.")}, "name", "conditions"),
	"SegmentCount": obj(schema{"count": describe(integer(), "Active subscribers the segment matches now.")}),

	"TransactionalInput": input(schema{"template": str(), "template_id": integer(), "to": str(), "name": str(),
		"from": str(), "from_name": str(), "reply_to": str(), "data": schema{"type": "object"},
		"override_suppression": boolean()}, "to"),
	"Queued": obj(schema{"delivery_id": integer()}),
	"OutboxMessage": obj(schema{"id": integer(), "campaign_id": integer(), "to": str(), "subject": str(),
		"message_id": str(), "created_at": dateTime()}),

	"Suppression": obj(schema{"id": integer(), "kind": strEnum("address", "domain"), "value": str(),
		"reason": strEnum("hard_bounce", "complaint", "unsubscribe", "manual", "erased"), "note": str(), "created_at": dateTime()}),
	"SuppressionInput": input(schema{"value": str(), "kind": strEnum("address", "domain"), "note": str()}, "value"),

	"Bounce": obj(schema{"id": integer(), "kind": strEnum("hard", "soft", "complaint"), "category": str(), "status": str(),
		"diagnostic": str(), "remote_mta": str(), "reason": str(), "email": str(), "campaign_id": null(integer()),
		"subscriber_id": null(integer()), "delivery_id": null(integer()), "created_at": dateTime()}),
	"Event": obj(schema{"id": schema{"type": "string", "description": "e<n> for an open, click or unsubscribe, b<n> for a bounce or complaint"},
		"type": strEnum("open", "click", "unsubscribe", "bounce", "complaint"), "campaign_id": integer(), "subscriber_id": integer(),
		"delivery_id": integer(), "email": str(), "url": str(), "machine": boolean(), "bounce_kind": strEnum("hard", "soft"),
		"category": str(), "status": str(), "diagnostic": str(), "created_at": dateTime()},
		"campaign_id", "subscriber_id", "delivery_id", "email", "url", "bounce_kind", "category", "status", "diagnostic"),
	"EventPage": obj(schema{"data": array(ref("Event")),
		"cursor": schema{"type": "string", "description": "Pass as ?after= to get what happened since; returned unchanged when nothing did."},
		"more":   schema{"type": "boolean", "description": "The page is full: ask again at once."}}),

	"CampaignReport": obj(schema{
		"campaign": ref("Campaign"),
		"rates": obj(with(counterProps, schema{"total": integer(), "attempted": integer(), "hard_bounces": integer(),
			"soft_bounces": integer(), "complaints": integer(), "opens": integer(), "human_opens": integer(), "clicks": integer(),
			"human_clicks": integer(), "progress_pct": number(), "delivered_pct": number(), "bounce_pct": number(),
			"complaint_pct": number(), "open_pct": number(), "click_pct": number()})),
		"warnings":     array(obj(schema{"severe": boolean(), "text": str()})),
		"opens":        obj(eventCountProps),
		"clicks":       obj(eventCountProps),
		"unsubscribes": obj(eventCountProps),
		"links":        array(obj(with(eventCountProps, schema{"link_id": integer(), "url": str()}))),
		"bounces": array(obj(schema{"kind": strEnum("hard", "soft", "complaint"), "category": str(), "smtp": boolean(),
			"sample": str(), "count": integer()})),
		"providers": array(obj(schema{"provider": str(), "total": integer(), "sent": integer(), "bounced": integer(),
			"failed": integer(), "complaints": integer(), "deferred": integer(), "waiting": integer(), "delivered_pct": number(),
			"bounce_pct": number(), "complaint_pct": number(), "deferral_pct": number(), "tls_known": integer(),
			"tls_pct": number(), "verified_tls_pct": number()})),
		"timeline": array(obj(schema{"hour": dateTime(), "opens": integer(), "human_opens": integer(), "clicks": integer(),
			"human_clicks": integer()})),
	}),

	"SendingDomainStatus": obj(domainStatusProps),
	"SendingDomain": obj(with(domainStatusProps, schema{"selector": str(), "ed25519_selector": str(),
		"return_path_domain": str(), "spf_includes": str(), "created_at": dateTime(),
		"records": array(obj(dnsRecordProps)),
		"check": array(obj(with(dnsRecordProps, schema{"state": strEnum("ok", "missing", "wrong", "error"), "ok": boolean(),
			"found": array(str()), "problem": str(), "fix": str()})))})),
	"DomainReports": obj(schema{"domain": str(), "days": integer(), "dmarc_address": str(), "tls_address": str(),
		"messages": integer(), "dmarc_pass": integer(), "reports": integer(),
		"sources": array(obj(schema{"ip": str(), "reverse_name": str(), "messages": integer(), "dmarc_pass": integer(),
			"dkim_aligned_pass": integer(), "spf_aligned_pass": integer(), "quarantined": integer(), "rejected": integer(),
			"herald": boolean(), "flag": str(), "reporters": array(str())})),
		"tls_success": integer(), "tls_failure": integer(),
		"tls": array(obj(schema{"reporter": str(), "begin": dateTime(), "policy_type": str(), "policy_domain": str(),
			"success": integer(), "failure": integer(), "failures": array(str())}))}),
	"SendingDomainInput": input(schema{"domain": str(), "selector": str(), "ed25519": boolean(),
		"return_path_domain": str(), "spf_includes": str()}, "domain"),

	"DomainRule":      obj(with(ruleProps, schema{"id": integer(), "is_default": boolean(), "updated_at": dateTime()})),
	"DomainRuleInput": input(ruleProps, "name"),

	"Consent": obj(schema{"id": integer(), "created_at": dateTime(), "subscriber_id": null(integer()), "email": str(),
		"list_id": null(integer()), "list": str(), "action": str(), "lawful_basis": str(), "source": str(), "ip": str(),
		"user_agent": str(), "page": str(), "consent_text_sha256": str(), "actor": str(), "note": str(),
		"prev_hash": str(), "hash": str()}),

	"DataRequest": obj(schema{"id": integer(), "kind": strEnum("access", "portability", "rectification", "erasure"),
		"email": str(), "subscriber_id": null(integer()), "status": strEnum("open", "done", "rejected"), "note": str(),
		"outcome": str(), "created_by": str(), "handled_by": str(), "received_at": dateTime(), "due_at": dateTime(),
		"overdue": boolean(), "handled_at": null(dateTime())}),
	"DataRequestInput": input(schema{"kind": strEnum("access", "portability", "rectification", "erasure"), "email": str(),
		"received_at": schema{"type": "string", "format": "date", "description": "YYYY-MM-DD; today when left out"},
		"note":        str()}, "kind", "email"),
	"DataRequestClose": input(schema{"status": strEnum("done", "rejected"), "outcome": str()}, "status", "outcome"),
	"SubjectExport": obj(schema{"request_id": integer(), "data": schema{
		"type": "object", "required": []string{"exported_at", "profile"},
		"properties": schema{"exported_at": dateTime(), "profile": schema{"type": "object"},
			"memberships": null(array(schema{"type": "object"})), "consents": null(array(schema{"type": "object"})),
			"deliveries": null(array(schema{"type": "object"})), "events": null(array(schema{"type": "object"})),
			"bounces": null(array(schema{"type": "object"})), "suppression": schema{"type": "object"}},
		"description": "Everything held on the person, as the compliance centre's export gives it."}}),

	"Webhook": obj(webhookProps, "disabled_reason"),
	"NewWebhook": obj(with(webhookProps, schema{"secret": describe(str(),
		"The signing secret (whsec_…): in this answer only. See the README's Webhooks section for the check.")}), "disabled_reason"),
	"WebhookInput": input(schema{"url": describe(str(), "http or https; loopback and private addresses only when an admin allows private targets."),
		"events":  array(strEnum(models.WebhookEvents...)),
		"enabled": describe(boolean(), "PUT only (POST creates it enabled); left out, it stays as it is.")}, "url", "events"),
	"WebhookDelivery": obj(schema{"at": dateTime(), "event_id": str(), "event": strEnum(append(slices.Clone(models.WebhookEvents), models.HookTest)...),
		"attempt":         describe(integer(), "1 for the first; 0 for a delivery not attempted yet."),
		"status_code":     describe(integer(), "The receiver's HTTP status; absent when none came back."),
		"error":           str(),
		"state":           describe(strEnum(models.HookPending, models.HookDone, models.HookGivenUp), "The delivery's state now."),
		"next_attempt_at": describe(dateTime(), "The next attempt, on the latest attempt of a pending delivery.")},
		"status_code", "error", "next_attempt_at"),
}

// param is a parameter of an operation.
type param struct {
	name, in, desc string
	schema         schema
	required       bool
}

func pathID(name, what string) param { return param{name, "path", what, integer(), true} }
func query(name, desc string, s schema) param {
	return param{name: name, in: "query", desc: desc, schema: s}
}

var (
	pBefore = query("before", "Cursor: the next_before of the previous page.", integer())
	pLimit  = query("limit", "Page size, 1 to 500.", integer())
)

// operation is one method on one path.
type operation struct {
	method, path, tag, summary string
	params                     []param
	body                       string // the request body's schema, "" for none
	optionalBody               bool   // the body may be left out
	ok                         int    // the success status
	answer                     schema // its body's schema, nil for none
	errors                     []int  // error statuses besides 401 and 403
	public                     bool   // no token needed
}

// data is the {"data": …} envelope; paged adds the cursor of the next page.
func data(s schema) schema { return obj(schema{"data": s}) }
func paged(item string) schema {
	return obj(schema{"data": array(ref(item)), "next": str(), "next_before": integer()}, "next", "next_before")
}

// apiOperations is every /api/v1 route, in the route table's order.
func apiOperations() []operation {
	id := pathID("id", "The object's id.")
	return []operation{
		{method: "GET", path: "/openapi.json", tag: "meta", summary: "This document.", ok: 200, answer: schema{"type": "object"}, public: true},

		{method: "GET", path: "/lists", tag: "lists", summary: "Every list, with its member counts.", ok: 200, answer: data(array(ref("List")))},
		{method: "POST", path: "/lists", tag: "lists", summary: "Create a list.", body: "ListInput", ok: 201, answer: data(ref("List")), errors: []int{400, 422}},
		{method: "GET", path: "/lists/{id}", tag: "lists", summary: "One list.", params: []param{id}, ok: 200, answer: data(ref("List")), errors: []int{404}},
		{method: "PUT", path: "/lists/{id}", tag: "lists", summary: "Replace a list's settings.", params: []param{id}, body: "ListInput", ok: 200, answer: data(ref("List")), errors: []int{400, 404, 422}},
		{method: "DELETE", path: "/lists/{id}", tag: "lists", summary: "Delete a list.", params: []param{id}, ok: 204, errors: []int{404}},

		{method: "GET", path: "/subscribers", tag: "subscribers", summary: "Search subscribers, newest first.", params: []param{
			query("q", "Address or name prefix.", str()), query("status", "active or blocklisted.", str()),
			query("list", "Members of this list.", integer()), query("attr", "Attribute key.", str()),
			query("value", "Attribute value (with attr).", str()), pBefore, pLimit},
			ok: 200, answer: paged("Subscriber"), errors: []int{400}},
		{method: "POST", path: "/subscribers", tag: "subscribers", summary: "Add a subscriber, optionally to lists.", body: "SubscriberInput", ok: 201, answer: data(ref("Subscriber")), errors: []int{400, 409, 422}},
		{method: "GET", path: "/subscribers/{id}", tag: "subscribers", summary: "One subscriber with their lists.", params: []param{id}, ok: 200, answer: data(ref("Subscriber")), errors: []int{404}},
		{method: "PUT", path: "/subscribers/{id}", tag: "subscribers", summary: "Change a subscriber's address, name or attributes.", params: []param{id}, body: "SubscriberInput", ok: 200, answer: data(ref("Subscriber")), errors: []int{400, 404, 409, 422}},
		{method: "DELETE", path: "/subscribers/{id}", tag: "subscribers", summary: "Delete a subscriber.", params: []param{id}, ok: 204, errors: []int{404}},
		{method: "PUT", path: "/subscribers/{id}/lists/{list}", tag: "subscribers", summary: "Subscribe to a list (or change the membership's status).", params: []param{id, pathID("list", "The list's id.")}, body: "SubscriptionInput", optionalBody: true, ok: 200, answer: data(ref("Subscriber")), errors: []int{400, 404, 409, 422}},
		{method: "DELETE", path: "/subscribers/{id}/lists/{list}", tag: "subscribers", summary: "Unsubscribe from a list.", params: []param{id, pathID("list", "The list's id.")}, ok: 200, answer: data(ref("Subscriber")), errors: []int{404}},
		{method: "GET", path: "/subscribers/{id}/consents", tag: "compliance", summary: "A subscriber's consent ledger rows, newest first (compliance readers).", params: []param{id, pBefore, pLimit}, ok: 200, answer: paged("Consent"), errors: []int{400, 404, 422}},

		{method: "GET", path: "/templates", tag: "templates", summary: "Every template.", params: []param{query("kind", "campaign or transactional.", str())}, ok: 200, answer: data(array(ref("Template")))},
		{method: "POST", path: "/templates", tag: "templates", summary: "Create a template; syntax errors come back with line numbers.", body: "TemplateInput", ok: 201, answer: data(ref("Template")), errors: []int{400, 409, 422}},
		{method: "GET", path: "/templates/{id}", tag: "templates", summary: "One template.", params: []param{id}, ok: 200, answer: data(ref("Template")), errors: []int{404}},
		{method: "PUT", path: "/templates/{id}", tag: "templates", summary: "Replace a template.", params: []param{id}, body: "TemplateInput", ok: 200, answer: data(ref("Template")), errors: []int{400, 404, 409, 422}},
		{method: "DELETE", path: "/templates/{id}", tag: "templates", summary: "Delete a template.", params: []param{id}, ok: 204, errors: []int{404, 409}},

		{method: "GET", path: "/automations", tag: "automations", summary: "Every automation with its current steps.", ok: 200, answer: data(array(ref("Automation")))},
		{method: "POST", path: "/automations", tag: "automations", summary: "Create an automation (a draft unless status is active).", body: "AutomationInput", ok: 201, answer: data(ref("Automation")), errors: []int{400, 422}},
		{method: "GET", path: "/automations/{id}", tag: "automations", summary: "One automation.", params: []param{id}, ok: 200, answer: data(ref("Automation")), errors: []int{404}},
		{method: "PUT", path: "/automations/{id}", tag: "automations", summary: "Change an automation; new steps become a new version once people entered.", params: []param{id}, body: "AutomationInput", ok: 200, answer: data(ref("Automation")), errors: []int{400, 404, 422}},
		{method: "DELETE", path: "/automations/{id}", tag: "automations", summary: "Delete an automation and the runs inside it; its messages stay in the reports.", params: []param{id}, ok: 204, errors: []int{404}},
		{method: "POST", path: "/automations/{id}/enter", tag: "automations", summary: "Put people into the automation at its first step (the API trigger, or a test run).", params: []param{id}, body: "AutomationEnter", ok: 200, answer: data(ref("AutomationEntered")), errors: []int{400, 404, 422}},
		{method: "POST", path: "/automations/{id}/exit", tag: "automations", summary: "Take people out of the automation (\"stop when they buy\"): they get no further step.", params: []param{id}, body: "AutomationExit", ok: 200, answer: data(ref("AutomationExited")), errors: []int{400, 404, 422}},
		{method: "GET", path: "/automations/{id}/figures", tag: "automations", summary: "Per step: people waiting there, people who passed it, and a send step's deliveries, opens, clicks and unsubscribes.", params: []param{id}, ok: 200, answer: data(array(ref("AutomationStepFigures"))), errors: []int{404}},
		{method: "GET", path: "/segments", tag: "segments", summary: "Every segment.", ok: 200, answer: data(array(ref("Segment")))},
		{method: "POST", path: "/segments", tag: "segments", summary: "Save a segment; a wrong condition is refused with its group and line.", body: "SegmentInput", ok: 201, answer: data(ref("Segment")), errors: []int{400, 422}},
		{method: "GET", path: "/segments/{id}", tag: "segments", summary: "One segment.", params: []param{id}, ok: 200, answer: data(ref("Segment")), errors: []int{404}},
		{method: "PUT", path: "/segments/{id}", tag: "segments", summary: "Replace a segment's name and conditions.", params: []param{id}, body: "SegmentInput", ok: 200, answer: data(ref("Segment")), errors: []int{400, 404, 422}},
		{method: "DELETE", path: "/segments/{id}", tag: "segments", summary: "Delete a segment no unfinished campaign uses.", params: []param{id}, ok: 204, errors: []int{404, 409}},
		{method: "GET", path: "/segments/{id}/count", tag: "segments", summary: "How many active subscribers the segment matches now.", params: []param{id}, ok: 200, answer: data(ref("SegmentCount")), errors: []int{404, 422}},
		{method: "GET", path: "/segments/{id}/preview", tag: "segments", summary: "The first matching subscribers.", params: []param{id,
			query("limit", "How many, 1 to 100 (default 20).", integer())}, ok: 200, answer: data(array(ref("Subscriber"))), errors: []int{404, 422}},

		{method: "GET", path: "/campaigns", tag: "campaigns", summary: "Campaigns, newest first, 50 a page.", params: []param{pBefore}, ok: 200, answer: data(array(ref("Campaign")))},
		{method: "POST", path: "/campaigns", tag: "campaigns", summary: "Create a campaign (scheduled when scheduled_at is given).", body: "CampaignInput", ok: 201, answer: data(ref("Campaign")), errors: []int{400, 422}},
		{method: "GET", path: "/campaigns/{id}", tag: "campaigns", summary: "One campaign with its counters.", params: []param{id}, ok: 200, answer: data(ref("Campaign")), errors: []int{404}},
		{method: "PUT", path: "/campaigns/{id}", tag: "campaigns", summary: "Change a draft or scheduled campaign: the fields sent, the others kept.", params: []param{id}, body: "CampaignUpdate", ok: 200, answer: data(ref("Campaign")), errors: []int{400, 404, 409, 422}},
		{method: "POST", path: "/campaigns/{id}/winner", tag: "campaigns", summary: "A/B test: send a variant to the rest of the audience.", params: []param{id}, body: "ABWinnerInput", ok: 200, answer: data(ref("Campaign")), errors: []int{400, 404, 409}},
		{method: "POST", path: "/campaigns/{id}/{action}", tag: "campaigns", summary: "Start, pause, resume or cancel a campaign.", params: []param{id,
			{name: "action", in: "path", schema: strEnum("start", "pause", "resume", "cancel"), required: true}}, ok: 200, answer: data(ref("Campaign")), errors: []int{404, 409, 422}},
		{method: "POST", path: "/campaigns/{id}/dns-override", tag: "campaigns", summary: "Allow a start although the sending domain's DNS check fails (admins).", params: []param{id}, body: "DNSOverrideInput", ok: 200, answer: data(ref("Campaign")), errors: []int{404, 422}},
		{method: "GET", path: "/campaigns/{id}/report", tag: "reports", summary: "The campaign report's figures: rates, engagement, links, bounces, providers, timeline.", params: []param{id}, ok: 200, answer: data(ref("CampaignReport")), errors: []int{404}},

		{method: "POST", path: "/tx", tag: "transactional", summary: "Send one transactional message.", body: "TransactionalInput", ok: 202, answer: data(ref("Queued")), errors: []int{400, 422}},
		{method: "GET", path: "/outbox", tag: "outbox", summary: "Messages captured by the capture transport, newest first.", params: []param{query("campaign", "Only this campaign's.", integer()), pBefore}, ok: 200, answer: data(array(ref("OutboxMessage")))},

		{method: "GET", path: "/suppressions", tag: "suppressions", summary: "The suppression list, newest first.", params: []param{query("q", "Address or @domain prefix.", str()), pBefore, pLimit}, ok: 200, answer: paged("Suppression"), errors: []int{400}},
		{method: "POST", path: "/suppressions", tag: "suppressions", summary: "Suppress an address or a whole domain.", body: "SuppressionInput", ok: 201, answer: data(ref("Suppression")), errors: []int{400, 422}},
		{method: "DELETE", path: "/suppressions/{id}", tag: "suppressions", summary: "Take an entry off the suppression list.", params: []param{id,
			{name: "reason", in: "query", desc: "Why the address may be mailed again (audited).", schema: str(), required: true}}, ok: 204, errors: []int{404, 409, 422}},
		{method: "GET", path: "/bounces", tag: "bounces", summary: "Bounces and complaints, newest first.", params: []param{
			query("campaign", "Only this campaign's.", integer()), query("type", "hard, soft or complaint.", strEnum("hard", "soft", "complaint")), pBefore, pLimit},
			ok: 200, answer: paged("Bounce"), errors: []int{400}},
		{method: "GET", path: "/events", tag: "events", summary: "Opens, clicks, unsubscribes, bounces and complaints since a cursor, oldest first, for incremental polling.", params: []param{
			query("after", "The cursor of the previous answer; leave out to start from the beginning.", str()),
			query("limit", "Page size, 1 to 1000 (default 100).", integer()),
			query("type", "Comma-separated kinds: open, click, unsubscribe, bounce, complaint.", str()),
			query("campaign", "Only this campaign's.", integer())},
			ok: 200, answer: ref("EventPage"), errors: []int{400}},

		{method: "GET", path: "/sending-domains", tag: "sending domains", summary: "Sending domains and their last DNS check.", ok: 200, answer: data(array(ref("SendingDomainStatus")))},
		{method: "POST", path: "/sending-domains", tag: "sending domains", summary: "Add a sending domain with new DKIM keys (admins).", body: "SendingDomainInput", ok: 201, answer: data(ref("SendingDomain")), errors: []int{400, 422}},
		{method: "GET", path: "/sending-domains/{id}", tag: "sending domains", summary: "A sending domain with the DNS records to publish and the last check.", params: []param{id}, ok: 200, answer: data(ref("SendingDomain")), errors: []int{404}},
		{method: "POST", path: "/sending-domains/{id}/check", tag: "sending domains", summary: "Check the domain's DNS now (admins).", params: []param{id}, ok: 200, answer: data(ref("SendingDomain")), errors: []int{404}},
		{method: "GET", path: "/sending-domains/{id}/reports", tag: "sending domains", summary: "What DMARC aggregate and TLS reports say about the domain over a period: the sources sending as it (Herald's marked, unknown ones and Herald's failing mail flagged) and the TLS results.",
			params: []param{id, query("days", "The period in days: 7, 30 (the default), 90 or 365.", integer())}, ok: 200, answer: data(ref("DomainReports")), errors: []int{404}},

		{method: "GET", path: "/domain-rules", tag: "domain rules", summary: "Per-destination sending rules, in the order they are tried.", ok: 200, answer: data(array(ref("DomainRule")))},
		{method: "POST", path: "/domain-rules", tag: "domain rules", summary: "Add a rule (admins).", body: "DomainRuleInput", ok: 201, answer: data(ref("DomainRule")), errors: []int{400, 422}},
		{method: "GET", path: "/domain-rules/{id}", tag: "domain rules", summary: "One rule.", params: []param{id}, ok: 200, answer: data(ref("DomainRule")), errors: []int{404}},
		{method: "PUT", path: "/domain-rules/{id}", tag: "domain rules", summary: "Replace a rule (admins).", params: []param{id}, body: "DomainRuleInput", ok: 200, answer: data(ref("DomainRule")), errors: []int{400, 404, 422}},
		{method: "DELETE", path: "/domain-rules/{id}", tag: "domain rules", summary: "Delete a rule other than the default (admins).", params: []param{id}, ok: 204, errors: []int{404, 409}},

		{method: "GET", path: "/consents", tag: "compliance", summary: "The consent ledger, newest first (compliance readers).", params: []param{
			query("subscriber", "Only this subscriber's rows.", integer()), query("list", "Only this list's rows.", integer()),
			query("email", "The address as recorded.", str()), query("source", "Where the change came from.", str()),
			query("basis", "Lawful basis.", str()), query("action", "What changed.", str()),
			query("from", "Written on or after this day (YYYY-MM-DD).", str()), query("to", "Written on or before this day (YYYY-MM-DD).", str()),
			pBefore, pLimit}, ok: 200, answer: paged("Consent"), errors: []int{400, 422}},
		{method: "GET", path: "/data-requests", tag: "compliance", summary: "Data-subject requests, newest first (compliance readers).", params: []param{
			query("status", "open, done or rejected.", strEnum("open", "done", "rejected")), pBefore, pLimit}, ok: 200, answer: paged("DataRequest"), errors: []int{400}},
		{method: "POST", path: "/data-requests", tag: "compliance", summary: "Log a data-subject request as received (admins).", body: "DataRequestInput", ok: 201, answer: data(ref("DataRequest")), errors: []int{400, 422}},
		{method: "GET", path: "/data-requests/{id}", tag: "compliance", summary: "One request and its status (compliance readers).", params: []param{id}, ok: 200, answer: data(ref("DataRequest")), errors: []int{404}},
		{method: "POST", path: "/data-requests/{id}/export", tag: "compliance", summary: "Answer an access or portability request: the person's data as JSON, and the request closed (admins).", params: []param{id}, ok: 200, answer: ref("SubjectExport"), errors: []int{404, 409}},
		{method: "POST", path: "/data-requests/{id}/erase", tag: "compliance", summary: "Answer an erasure request: the subscriber erased and the request closed (admins).", params: []param{id}, ok: 200, answer: data(ref("DataRequest")), errors: []int{404, 409}},
		{method: "POST", path: "/data-requests/{id}/close", tag: "compliance", summary: "Close a request as done or rejected, with the outcome (admins).", params: []param{id}, body: "DataRequestClose", ok: 200, answer: data(ref("DataRequest")), errors: []int{400, 404, 409, 422}},

		{method: "GET", path: "/webhooks", tag: "webhooks", summary: "Outgoing webhooks (admins).", ok: 200, answer: data(array(ref("Webhook")))},
		{method: "POST", path: "/webhooks", tag: "webhooks", summary: "Register a webhook; the answer carries its signing secret, once (admins).", body: "WebhookInput", ok: 201, answer: data(ref("NewWebhook")), errors: []int{400, 422}},
		{method: "GET", path: "/webhooks/{id}", tag: "webhooks", summary: "One webhook, without its secret (admins).", params: []param{id}, ok: 200, answer: data(ref("Webhook")), errors: []int{404}},
		{method: "PUT", path: "/webhooks/{id}", tag: "webhooks", summary: "Change a webhook's URL, events or enabled switch (admins).", params: []param{id}, body: "WebhookInput", ok: 200, answer: data(ref("Webhook")), errors: []int{400, 404, 422}},
		{method: "DELETE", path: "/webhooks/{id}", tag: "webhooks", summary: "Delete a webhook and its delivery log (admins).", params: []param{id}, ok: 204, errors: []int{404}},
		{method: "GET", path: "/webhooks/{id}/deliveries", tag: "webhooks", summary: "The delivery log: the latest attempts, newest first, then deliveries not attempted yet (admins).", params: []param{id}, ok: 200, answer: data(array(ref("WebhookDelivery"))), errors: []int{404}},
	}
}

// openAPIDocument builds the document.
func openAPIDocument() map[string]any {
	paths := map[string]map[string]any{}
	errorAnswer := func(desc string) any {
		return schema{"description": desc, "content": schema{"application/json": schema{"schema": ref("Error")}}}
	}
	words := map[int]string{400: "The request is malformed; the message says what to send.",
		401: "No valid API token.", 403: "The token's user may not do this.", 404: "No such object.",
		409: "The object's state does not allow this.", 422: "The input is not valid; fields says which and why."}
	for _, op := range apiOperations() {
		o := schema{"summary": op.summary, "tags": []string{op.tag},
			"operationId": strings.ToLower(op.method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(op.path)}
		var ps []schema
		for _, p := range op.params {
			ps = append(ps, schema{"name": p.name, "in": p.in, "description": p.desc, "required": p.required, "schema": p.schema})
		}
		if len(ps) > 0 {
			o["parameters"] = ps
		}
		if op.body != "" {
			o["requestBody"] = schema{"required": !op.optionalBody, "content": schema{"application/json": schema{"schema": ref(op.body)}}}
		}
		ok := schema{"description": http.StatusText(op.ok)}
		if op.answer != nil {
			ok["content"] = schema{"application/json": schema{"schema": op.answer}}
		}
		res := schema{itoa(int64(op.ok)): ok}
		codes := op.errors
		if op.public {
			o["security"] = []any{}
		} else {
			codes = append([]int{401, 403}, codes...)
		}
		for _, code := range codes {
			res[itoa(int64(code))] = errorAnswer(words[code])
		}
		o["responses"] = res
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		paths[op.path][strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": schema{"title": "Herald API", "version": "1",
			"description": "Herald's JSON API. Send an API token (Settings → API tokens) as `Authorization: Bearer hrld_…`. " +
				"Reading needs a viewer's token, changes a marketer's, sending domains, rules, data-subject requests and webhooks an admin's; " +
				"the consent ledger and data-subject requests are read by viewers and admins, and by marketers when an admin allows it. " +
				"Errors are `{\"error\": {\"code\", \"message\", \"request_id\", \"fields\"}}`. " +
				"Lists page newest first: pass `next_before` back as `before`. The event feed pages oldest first: pass `cursor` back as `after`."},
		"servers":    []schema{{"url": "/api/v1"}},
		"security":   []schema{{"bearer": []string{}}},
		"paths":      paths,
		"components": schema{"schemas": apiSchemas, "securitySchemes": schema{"bearer": schema{"type": "http", "scheme": "bearer"}}},
	}
}

var openAPIJSON = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(openAPIDocument(), "", "  ")
	if err != nil {
		panic("web: the OpenAPI document does not encode: " + err.Error())
	}
	return b
})

// serveOpenAPI serves the document. It is public: it holds no data, only
// the API's shape (the same as in the source), and tools that read it
// (Swagger UI, client generators) fetch it without a secret.
func serveOpenAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, "application/json", openAPIJSON())
}

// segmentFieldEnum and segmentOpEnum are the condition fields and
// operators models.SegmentFields knows.
func segmentFieldEnum() schema {
	var fs []string
	for _, f := range models.SegmentFields {
		fs = append(fs, f.Field)
	}
	return strEnum(fs...)
}

func segmentOpEnum() schema {
	var ops []string
	for _, f := range models.SegmentFields {
		for _, op := range f.Ops {
			if !contains(ops, op) {
				ops = append(ops, op)
			}
		}
	}
	return strEnum(ops...)
}

// Package push sends offline notifications: a [Provider] interface for
// push services (Web Push in package webpush; phone services such as APNs
// and FCM plug in behind the same interface), and a [Notifier] that
// decides who gets a push for a conversation event.
//
// The flow (docs/events.md, "Offline notifications"):
//
//	event log --durable consumer "push"--> Notifier.HandleEvent
//	    members of the conversation, minus the actor
//	    minus members whose setting is "none" (muted)
//	    minus members with "mentions" who are not mentioned (@name or @channel)
//	    minus members who are online (presence), unless WhenOnline is set
//	    -> each subscription of each recipient: Provider.Send, or with a
//	       Queue one job on JSP_WORK_PUSH (de-duplicated per event and
//	       subscription) that StartWorkers sends with the queue's retries
//	       404/410 from the push service -> subscription removed
package push

import (
	"context"
	"errors"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Subscription is where one device receives pushes.
type Subscription struct {
	// UserID owns the subscription.
	UserID string
	// Endpoint is the push service URL (Web Push) or device token
	// address.
	Endpoint string
	// P256dh is the subscriber's P-256 public key (Web Push).
	P256dh []byte
	// Auth is the subscriber's authentication secret (Web Push).
	Auth []byte
	// Provider names the Provider that serves it ("webpush", "apns",
	// "fcm").
	Provider string
}

// Urgency is the RFC 8030, Section 5.3 urgency of a push message.
type Urgency string

// Urgencies, lowest first.
const (
	UrgencyVeryLow Urgency = "very-low"
	UrgencyLow     Urgency = "low"
	UrgencyNormal  Urgency = "normal"
	UrgencyHigh    Urgency = "high"
)

// Valid reports whether u is one of the four urgencies.
func (u Urgency) Valid() bool {
	return u == UrgencyVeryLow || u == UrgencyLow || u == UrgencyNormal || u == UrgencyHigh
}

// Message is one notification.
type Message struct {
	// Payload is the application data the device receives (encrypted by
	// the provider where the protocol requires it).
	Payload []byte
	// TTL is how long the push service keeps an undelivered message;
	// zero means deliver now or drop (RFC 8030, Section 5.2).
	TTL time.Duration
	// Urgency lets a device on battery defer low-priority messages;
	// empty means normal.
	Urgency Urgency
	// Topic replaces an undelivered message with the same topic
	// (RFC 8030, Section 5.4): at most 32 characters of the base64url
	// alphabet.
	Topic string
}

// Provider delivers messages to one kind of push service.
type Provider interface {
	// Send delivers msg to sub. It fails with an error wrapping ErrGone
	// when the push service says the subscription no longer exists; the
	// caller then removes it.
	Send(ctx context.Context, sub Subscription, msg Message) error
}

// ErrGone: the push service reported the subscription expired or unknown.
// Errors wrapping it also carry jsperr.PushSubscriptionGone.
var ErrGone = errors.New("push: subscription gone")

// Gone returns an error wrapping ErrGone for a subscription endpoint.
func Gone(endpoint string, status int) error {
	return errors.Join(ErrGone, jsperr.Newf(jsperr.PushSubscriptionGone, "endpoint %s answered %d", endpoint, status))
}

// ValidTopic reports whether t is a valid RFC 8030 topic.
func ValidTopic(t string) bool {
	if len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

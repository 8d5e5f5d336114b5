package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

const webhookCols = `id, url, secret, event_types, disabled, created_at, updated_at`

func scanWebhook(row pgx.Row) (storage.Webhook, error) {
	var (
		w                storage.Webhook
		types            string
		created, updated time.Time
	)
	if err := row.Scan(&w.ID, &w.URL, &w.Secret, &types, &w.Disabled, &created, &updated); err != nil {
		return storage.Webhook{}, err
	}
	var err error
	if w.EventTypes, err = sqlcommon.ParseEventTypes(types); err != nil {
		return storage.Webhook{}, err
	}
	w.Created, w.Updated = utc(created), utc(updated)
	return w, nil
}

// PutWebhook inserts or replaces a webhook, keeping its creation time.
func (s *Store) PutWebhook(ctx context.Context, w storage.Webhook) (storage.Webhook, error) {
	if err := sqlcommon.Webhook(w); err != nil {
		return storage.Webhook{}, fmt.Errorf("storage/postgres: put webhook: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return storage.Webhook{}, err
	}
	now := s.now()
	out, err := scanWebhook(db.QueryRow(ctx, `INSERT INTO webhooks (`+webhookCols+`) VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
			event_types = excluded.event_types, disabled = excluded.disabled, updated_at = excluded.updated_at
		RETURNING `+webhookCols,
		w.ID, w.URL, w.Secret, sqlcommon.EventTypes(w.EventTypes), w.Disabled, now))
	if err != nil {
		return storage.Webhook{}, fmt.Errorf("storage/postgres: put webhook %s: %w", w.ID, err)
	}
	return out, nil
}

// GetWebhook returns one webhook or ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, id string) (storage.Webhook, error) {
	db, err := s.db()
	if err != nil {
		return storage.Webhook{}, err
	}
	w, err := scanWebhook(db.QueryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Webhook{}, fmt.Errorf("storage/postgres: get webhook %s: %w", id, err)
	}
	return w, nil
}

// ListWebhooks returns webhooks ordered by id after the cursor.
func (s *Store) ListWebhooks(ctx context.Context, after string, limit int) ([]storage.Webhook, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2`,
		after, s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list webhooks: %w", err)
	}
	defer rows.Close()
	var out []storage.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("storage/postgres: list webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/postgres: list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes a webhook; its dead letters go with it (ON DELETE
// CASCADE).
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.deleteOne(ctx, "webhook "+id, `DELETE FROM webhooks WHERE id = $1`, id)
}

// deleteOne runs a DELETE that must remove a row.
func (s *Store) deleteOne(ctx context.Context, what, query string, args ...any) error {
	db, err := s.db()
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, query, args...)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage/postgres: delete %s: %w", what, err)
	}
	return nil
}

// AddDeadLetter records a given-up delivery.
func (s *Store) AddDeadLetter(ctx context.Context, d storage.DeadLetter) (storage.DeadLetterID, error) {
	if err := sqlcommon.DeadLetter(d); err != nil {
		return 0, fmt.Errorf("storage/postgres: add dead letter: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	at := sqlcommon.Time(d.Time)
	if d.Time.IsZero() {
		at = s.now()
	}
	if d.Payload == nil {
		d.Payload = []byte{}
	}
	var id int64
	err = db.QueryRow(ctx, `INSERT INTO webhook_dead_letters
		(webhook_id, event_id, event_type, payload, attempts, last_error, at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		d.WebhookID, d.EventID, d.EventType, d.Payload, d.Attempts, sqlcommon.TruncateError(d.LastError), at).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: add dead letter for webhook %s event %s: %w", d.WebhookID, d.EventID, err)
	}
	return storage.DeadLetterID(id), nil
}

// ListDeadLetters returns dead letters oldest first after the cursor.
func (s *Store) ListDeadLetters(ctx context.Context, webhookID string, after storage.DeadLetterID, limit int) ([]storage.DeadLetter, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT id, webhook_id, event_id, event_type, payload, attempts, last_error, at
		FROM webhook_dead_letters WHERE ($1 = '' OR webhook_id = $1) AND id > $2 ORDER BY id LIMIT $3`,
		webhookID, int64(after), s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []storage.DeadLetter
	for rows.Next() {
		var (
			d  storage.DeadLetter
			id int64
			n  int32
			at time.Time
		)
		if err := rows.Scan(&id, &d.WebhookID, &d.EventID, &d.EventType, &d.Payload, &n, &d.LastError, &at); err != nil {
			return nil, fmt.Errorf("storage/postgres: list dead letters: %w", err)
		}
		d.ID, d.Attempts, d.Time = storage.DeadLetterID(id), int(n), utc(at)
		if d.Payload == nil {
			d.Payload = []byte{}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/postgres: list dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetter removes one dead letter.
func (s *Store) DeleteDeadLetter(ctx context.Context, id storage.DeadLetterID) error {
	return s.deleteOne(ctx, fmt.Sprintf("dead letter %d", id), `DELETE FROM webhook_dead_letters WHERE id = $1`, int64(id))
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// PutPushSubscription inserts or replaces a subscription.
func (s *Store) PutPushSubscription(ctx context.Context, p storage.PushSubscription) error {
	if err := sqlcommon.PushSubscription(p); err != nil {
		return fmt.Errorf("storage/postgres: put push subscription: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return err
	}
	if p.Provider == "" {
		p.Provider = "webpush"
	}
	_, err = db.Exec(ctx, `INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, provider, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, provider = excluded.provider`,
		p.UserID, p.Endpoint, nonNil(p.P256dh), nonNil(p.Auth), p.Provider, s.now())
	if err != nil {
		return fmt.Errorf("storage/postgres: put push subscription of %s: %w", p.UserID, err)
	}
	return nil
}

// ListPushSubscriptions returns a user's subscriptions ordered by endpoint.
func (s *Store) ListPushSubscriptions(ctx context.Context, userID string) ([]storage.PushSubscription, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT endpoint, p256dh, auth, provider, created_at FROM push_subscriptions
		WHERE user_id = $1 ORDER BY endpoint`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list push subscriptions of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.PushSubscription
	for rows.Next() {
		p := storage.PushSubscription{UserID: userID}
		var created time.Time
		if err := rows.Scan(&p.Endpoint, &p.P256dh, &p.Auth, &p.Provider, &created); err != nil {
			return nil, fmt.Errorf("storage/postgres: list push subscriptions of %s: %w", userID, err)
		}
		p.Created, p.P256dh, p.Auth = utc(created), nonNil(p.P256dh), nonNil(p.Auth)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/postgres: list push subscriptions of %s: %w", userID, err)
	}
	return out, nil
}

// DeletePushSubscription removes one subscription.
func (s *Store) DeletePushSubscription(ctx context.Context, userID, endpoint string) error {
	return s.deleteOne(ctx, "push subscription of "+userID, `DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2`, userID, endpoint)
}

// PutNotifySetting inserts or replaces a notification setting.
func (s *Store) PutNotifySetting(ctx context.Context, n storage.NotifySetting) error {
	if err := sqlcommon.NotifySetting(n); err != nil {
		return fmt.Errorf("storage/postgres: put notify setting: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `INSERT INTO notify_settings (user_id, conversation, level, when_online, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id, conversation) DO UPDATE SET level = excluded.level,
			when_online = excluded.when_online, updated_at = excluded.updated_at`,
		n.UserID, n.Conversation, string(n.Level), n.WhenOnline, s.now())
	if err != nil {
		return fmt.Errorf("storage/postgres: put notify setting of %s in %s: %w", n.UserID, n.Conversation, err)
	}
	return nil
}

// GetNotifySetting returns a stored setting or ErrNotFound.
func (s *Store) GetNotifySetting(ctx context.Context, userID, conversation string) (storage.NotifySetting, error) {
	db, err := s.db()
	if err != nil {
		return storage.NotifySetting{}, err
	}
	n := storage.NotifySetting{UserID: userID, Conversation: conversation}
	var (
		level   string
		updated time.Time
	)
	err = db.QueryRow(ctx, `SELECT level, when_online, updated_at FROM notify_settings WHERE user_id = $1 AND conversation = $2`,
		userID, conversation).Scan(&level, &n.WhenOnline, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.NotifySetting{}, fmt.Errorf("storage/postgres: get notify setting of %s in %s: %w", userID, conversation, err)
	}
	n.Level, n.Updated = storage.NotifyLevel(level), utc(updated)
	return n, nil
}

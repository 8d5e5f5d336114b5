package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

const webhookCols = `id, url, secret, event_types, disabled, created_us, updated_us`

func scanWebhook(sc scanner) (storage.Webhook, error) {
	var (
		w                storage.Webhook
		types            string
		disabled         int64
		created, updated int64
	)
	if err := sc.Scan(&w.ID, &w.URL, &w.Secret, &types, &disabled, &created, &updated); err != nil {
		return storage.Webhook{}, err
	}
	var err error
	if w.EventTypes, err = sqlcommon.ParseEventTypes(types); err != nil {
		return storage.Webhook{}, err
	}
	w.Disabled, w.Created, w.Updated = disabled != 0, sqlcommon.FromMicros(created), sqlcommon.FromMicros(updated)
	return w, nil
}

// PutWebhook inserts or replaces a webhook, keeping its creation time.
func (s *Store) PutWebhook(ctx context.Context, w storage.Webhook) (storage.Webhook, error) {
	if err := sqlcommon.Webhook(w); err != nil {
		return storage.Webhook{}, fmt.Errorf("storage/sqlite: put webhook: %w", err)
	}
	now := s.now()
	var out storage.Webhook
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		out, err = scanWebhook(tx.QueryRowContext(ctx, `INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
				event_types = excluded.event_types, disabled = excluded.disabled, updated_us = excluded.updated_us
			RETURNING `+webhookCols,
			w.ID, w.URL, w.Secret, sqlcommon.EventTypes(w.EventTypes), w.Disabled, now, now))
		return err
	})
	if err != nil {
		return storage.Webhook{}, fmt.Errorf("storage/sqlite: put webhook %s: %w", w.ID, err)
	}
	return out, nil
}

// GetWebhook returns one webhook or ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, id string) (storage.Webhook, error) {
	return getByID(ctx, s, "webhooks", webhookCols, "webhook", id, scanWebhook)
}

// ListWebhooks returns webhooks ordered by id after the cursor.
func (s *Store) ListWebhooks(ctx context.Context, after string, limit int) ([]storage.Webhook, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id > ? ORDER BY id LIMIT ?`,
		after, s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: list webhooks: %w", err)
	}
	defer rows.Close()
	var out []storage.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("storage/sqlite: list webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes a webhook; its dead letters go with it (ON DELETE
// CASCADE).
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.deleteOne(ctx, "webhook "+id, `DELETE FROM webhooks WHERE id = ?`, id)
}

// deleteOne runs a DELETE that must remove a row.
func (s *Store) deleteOne(ctx context.Context, what, query string, args ...any) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: delete %s: %w", what, err)
	}
	return nil
}

// AddDeadLetter records a given-up delivery.
func (s *Store) AddDeadLetter(ctx context.Context, d storage.DeadLetter) (storage.DeadLetterID, error) {
	if err := sqlcommon.DeadLetter(d); err != nil {
		return 0, fmt.Errorf("storage/sqlite: add dead letter: %w", err)
	}
	at := sqlcommon.Micros(d.Time)
	if d.Time.IsZero() {
		at = s.now()
	}
	if d.Payload == nil {
		d.Payload = []byte{}
	}
	var id int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO webhook_dead_letters
			(webhook_id, event_id, event_type, payload, attempts, last_error, at_us) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			d.WebhookID, d.EventID, d.EventType, d.Payload, d.Attempts, sqlcommon.TruncateError(d.LastError), at).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: add dead letter for webhook %s event %s: %w", d.WebhookID, d.EventID, err)
	}
	return storage.DeadLetterID(id), nil
}

// ListDeadLetters returns dead letters oldest first after the cursor.
func (s *Store) ListDeadLetters(ctx context.Context, webhookID string, after storage.DeadLetterID, limit int) ([]storage.DeadLetter, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT id, webhook_id, event_id, event_type, payload, attempts, last_error, at_us
		FROM webhook_dead_letters WHERE (? = '' OR webhook_id = ?) AND id > ? ORDER BY id LIMIT ?`,
		webhookID, webhookID, int64(after), s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []storage.DeadLetter
	for rows.Next() {
		var (
			d      storage.DeadLetter
			id, at int64
		)
		if err := rows.Scan(&id, &d.WebhookID, &d.EventID, &d.EventType, &d.Payload, &d.Attempts, &d.LastError, &at); err != nil {
			return nil, fmt.Errorf("storage/sqlite: list dead letters: %w", err)
		}
		d.ID, d.Time = storage.DeadLetterID(id), sqlcommon.FromMicros(at)
		if d.Payload == nil {
			d.Payload = []byte{}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetter removes one dead letter.
func (s *Store) DeleteDeadLetter(ctx context.Context, id storage.DeadLetterID) error {
	return s.deleteOne(ctx, fmt.Sprintf("dead letter %d", id), `DELETE FROM webhook_dead_letters WHERE id = ?`, int64(id))
}

// PutPushSubscription inserts or replaces a subscription.
func (s *Store) PutPushSubscription(ctx context.Context, p storage.PushSubscription) error {
	if err := sqlcommon.PushSubscription(p); err != nil {
		return fmt.Errorf("storage/sqlite: put push subscription: %w", err)
	}
	if p.Provider == "" {
		p.Provider = "webpush"
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, provider, created_us)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, provider = excluded.provider`,
			p.UserID, p.Endpoint, nonNil(p.P256dh), nonNil(p.Auth), p.Provider, s.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: put push subscription of %s: %w", p.UserID, err)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ListPushSubscriptions returns a user's subscriptions ordered by endpoint.
func (s *Store) ListPushSubscriptions(ctx context.Context, userID string) ([]storage.PushSubscription, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT endpoint, p256dh, auth, provider, created_us FROM push_subscriptions
		WHERE user_id = ? ORDER BY endpoint`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: list push subscriptions of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.PushSubscription
	for rows.Next() {
		p := storage.PushSubscription{UserID: userID}
		var created int64
		if err := rows.Scan(&p.Endpoint, &p.P256dh, &p.Auth, &p.Provider, &created); err != nil {
			return nil, fmt.Errorf("storage/sqlite: list push subscriptions of %s: %w", userID, err)
		}
		p.Created, p.P256dh, p.Auth = sqlcommon.FromMicros(created), nonNil(p.P256dh), nonNil(p.Auth)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list push subscriptions of %s: %w", userID, err)
	}
	return out, nil
}

// DeletePushSubscription removes one subscription.
func (s *Store) DeletePushSubscription(ctx context.Context, userID, endpoint string) error {
	return s.deleteOne(ctx, "push subscription of "+userID, `DELETE FROM push_subscriptions WHERE user_id = ? AND endpoint = ?`, userID, endpoint)
}

// PutNotifySetting inserts or replaces a notification setting.
func (s *Store) PutNotifySetting(ctx context.Context, n storage.NotifySetting) error {
	if err := sqlcommon.NotifySetting(n); err != nil {
		return fmt.Errorf("storage/sqlite: put notify setting: %w", err)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notify_settings (user_id, conversation, level, when_online, updated_us)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_id, conversation) DO UPDATE SET level = excluded.level,
				when_online = excluded.when_online, updated_us = excluded.updated_us`,
			n.UserID, n.Conversation, string(n.Level), n.WhenOnline, s.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: put notify setting of %s in %s: %w", n.UserID, n.Conversation, err)
	}
	return nil
}

// GetNotifySetting returns a stored setting or ErrNotFound.
func (s *Store) GetNotifySetting(ctx context.Context, userID, conversation string) (storage.NotifySetting, error) {
	r, err := s.reader()
	if err != nil {
		return storage.NotifySetting{}, err
	}
	n := storage.NotifySetting{UserID: userID, Conversation: conversation}
	var (
		level      string
		whenOnline int64
		updated    int64
	)
	err = r.QueryRowContext(ctx, `SELECT level, when_online, updated_us FROM notify_settings WHERE user_id = ? AND conversation = ?`,
		userID, conversation).Scan(&level, &whenOnline, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.NotifySetting{}, fmt.Errorf("storage/sqlite: get notify setting of %s in %s: %w", userID, conversation, err)
	}
	n.Level, n.WhenOnline, n.Updated = storage.NotifyLevel(level), whenOnline != 0, sqlcommon.FromMicros(updated)
	return n, nil
}

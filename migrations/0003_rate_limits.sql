-- Rate-limit counters: a fixed window per (kind, key), kept in the database
-- so that the limits hold across workers and replicas.
--
--   kind           key              what
--   login_failure  lower-case email failed logins (and wrong current_password)
--   mail_confirm   lower-case email confirmation mails asked for
--   mail_reset     lower-case email reset mails asked for
--
-- One row per (kind, key), upserted by scripts/lib/store.lua (rate_hit): a
-- window older than its length starts again at 1.

CREATE TABLE rate_limits (
    kind         text        NOT NULL,
    key          text        NOT NULL,
    window_start timestamptz NOT NULL DEFAULT now(),
    count        integer     NOT NULL DEFAULT 0,
    CONSTRAINT rate_limits_pkey PRIMARY KEY (kind, key),
    CONSTRAINT rate_limits_kind_check CHECK (kind IN ('login_failure', 'mail_confirm', 'mail_reset'))
);

-- Cleaning up windows long over.
CREATE INDEX rate_limits_window_start_idx ON rate_limits (window_start);

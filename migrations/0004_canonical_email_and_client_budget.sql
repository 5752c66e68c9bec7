-- One canonical form of an email address, and the per-client hashing budget.
--
-- Email: scripts/lib/validate.lua (validate.email) is the one place that
-- makes the canonical form: trimmed, ASCII only (an address with any other
-- character is refused: host/mail.c sends to ASCII addresses only), letters
-- lower-cased. The database stores that form and compares addresses as
-- stored. Before, the unique indexes and lookups used lower(), whose Unicode
-- folding under a UTF-8 collation (U+212A KELVIN SIGN -> "k") disagreed with
-- the scripts' ASCII one, so one address had several spellings as a limit
-- key.
--
-- Existing rows are brought to the canonical form (lower() of the "C"
-- collation changes ASCII letters only; rows were stored lower-cased, so
-- this changes nothing unless a row was written by hand). A row holding a
-- non-ASCII address is left as it is, and its admin can no longer log in
-- until an operator gives it an ASCII address: the check below is NOT
-- VALID, so it binds every new or changed row and leaves old rows alone.

UPDATE admins SET email = lower(email COLLATE "C") WHERE email <> lower(email COLLATE "C");
UPDATE users SET email = lower(email COLLATE "C") WHERE email <> lower(email COLLATE "C");
UPDATE one_time_tokens SET email = lower(email COLLATE "C") WHERE email <> lower(email COLLATE "C");

DROP INDEX admins_email_key;
CREATE UNIQUE INDEX admins_email_key ON admins (email);
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (email);

ALTER TABLE admins ADD CONSTRAINT admins_email_canonical
    CHECK (email = lower(email COLLATE "C") AND email ~ '^[!-~]+$') NOT VALID;
ALTER TABLE users ADD CONSTRAINT users_email_canonical
    CHECK (email = lower(email COLLATE "C") AND email ~ '^[!-~]+$') NOT VALID;

-- Rate limits: `client_hash` counts the password-hashing requests made
-- without a token (register, login, password reset) per client address
-- (CLIENT_HASH_BUDGET_PER_MIN).
ALTER TABLE rate_limits DROP CONSTRAINT rate_limits_kind_check;
ALTER TABLE rate_limits ADD CONSTRAINT rate_limits_kind_check
    CHECK (kind IN ('login_failure', 'mail_confirm', 'mail_reset', 'client_hash'));

"""MariaDB and MySQL: a message's first claim as one stored procedure (issue 15 point 4).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

``othermail_first_claim`` does on MariaDB what one data-modifying ``WITH`` does on PostgreSQL
(forwarder/adapters/sql/directory/first_claim.py): count the message on the alias within its
``max_messages`` and in its rate-limit windows, count its contacts, insert its claims, all or
nothing, in one round trip (``CALL``) instead of four statements. MariaDB has no data-modifying
``WITH`` and no arrays, so the lists come as JSON (read with ``JSON_EXTRACT`` and ``JSON_TABLE``:
MariaDB 10.6 or later; MySQL 8.0 has them too, but is not tested here) and the steps are a
procedure's statements in a transaction of its own:

1. an alias already at its ``max_messages`` is refused first, by a plain read, before a window
   row is touched;
2. each of the message's windows is counted by an ``INSERT ... ON DUPLICATE KEY UPDATE`` (opened
   at 1 where missing), which locks its row, in key order (every first claim locks them in the same
   order, then the alias row, so two claims never wait on each other crosswise), and read back;
3. the alias's room under ``max_messages`` is read again with a locking read (the latest row);
4. over a window's limit or at the message limit: rolled back, nothing written (the windows opened
   or counted go too); else the alias, the contacts and the claims are written and committed.

Any error (a claim already there: a racing delivery of the same message; a deadlock) rolls the
procedure's transaction back and is raised as it was, for the caller to start over. The result is
one row: ``claimed`` (the claim rows inserted, 0 when refused), ``under_max`` (the alias had room
under its message limit), ``full_window`` (the smallest position, as the caller gave it, of a
window the message would take over its limit, or NULL).

SQLite and PostgreSQL: nothing to do (SQLite claims in a transaction; PostgreSQL in one statement).
Written by hand and self-contained, like 0002 to 0009.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCEDURE = "othermail_first_claim"

#: The tables' character set and collation (models.base.MYSQL_TABLE_OPTIONS), whatever the database's default.
UTF8 = " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

#: p_windows: JSON [[key, window start, limit, position], ...], sorted by key and start (the order
#: their rows are locked in), position the 1-based place the caller checks it at;
#: p_contact_ids: JSON [id, ...]; p_claims: JSON [[destination id, outcome, reason], ...].
#: Every lock is taken by primary key, one row at a time (a join may scan a small table and lock
#: every row it reads), the windows in the order given.
CREATE = f"""
CREATE PROCEDURE {PROCEDURE}(
    IN p_windows LONGTEXT{UTF8},
    IN p_contact_ids LONGTEXT{UTF8},
    IN p_claims LONGTEXT{UTF8},
    IN p_paused INT,
    IN p_alias_id INT,
    IN p_message_id VARCHAR(255){UTF8},
    IN p_recipient VARCHAR(254){UTF8},
    IN p_mail_from VARCHAR(254){UTF8},
    IN p_subject VARCHAR(255){UTF8},
    IN p_bytes_in INT,
    IN p_raw_key VARCHAR(512){UTF8},
    IN p_now DATETIME(6),
    IN p_received_at DATETIME(6)
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    DECLARE v_at INT DEFAULT 0;
    DECLARE v_key VARCHAR(200){UTF8};
    DECLARE v_start BIGINT;
    DECLARE v_count INT;
    DECLARE v_position INT;
    DECLARE v_full INT DEFAULT NULL;
    DECLARE v_under BOOLEAN DEFAULT NULL;
    DECLARE v_claimed INT DEFAULT 0;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;
    START TRANSACTION;
    -- an alias at its message limit is refused before a window row is touched: message_count only
    -- grows, so a plain read that finds it there is final (window rows opened, then rolled back,
    -- leave the claims that waited on them to deadlock over the gap)
    SELECT max_messages IS NULL OR message_count < max_messages INTO v_under FROM aliases WHERE id = p_alias_id;
    IF COALESCE(v_under, FALSE) THEN
        -- each window counted (opened at 1 if new) and locked, then read back with a locking read
        -- (the latest row, not a snapshot taken before the next window was locked)
        WHILE v_at < JSON_LENGTH(p_windows) DO
            SET v_key = JSON_UNQUOTE(JSON_EXTRACT(p_windows, CONCAT('$[', v_at, '][0]')));
            SET v_start = CAST(JSON_UNQUOTE(JSON_EXTRACT(p_windows, CONCAT('$[', v_at, '][1]'))) AS SIGNED);
            INSERT INTO rate_limit_hits (`key`, window_start, count) VALUES (v_key, v_start, 1)
                ON DUPLICATE KEY UPDATE count = rate_limit_hits.count + 1;
            SELECT count INTO v_count FROM rate_limit_hits WHERE `key` = v_key AND window_start = v_start FOR UPDATE;
            SET v_position = CAST(JSON_UNQUOTE(JSON_EXTRACT(p_windows, CONCAT('$[', v_at, '][3]'))) AS SIGNED);
            IF v_count > CAST(JSON_UNQUOTE(JSON_EXTRACT(p_windows, CONCAT('$[', v_at, '][2]'))) AS SIGNED)
               AND (v_full IS NULL OR v_position < v_full) THEN
                SET v_full = v_position;
            END IF;
            SET v_at = v_at + 1;
        END WHILE;
        -- the limit again, on the latest row, locked
        SELECT max_messages IS NULL OR message_count < max_messages INTO v_under
            FROM aliases WHERE id = p_alias_id FOR UPDATE;
    END IF;
    IF v_full IS NOT NULL OR NOT COALESCE(v_under, FALSE) THEN
        ROLLBACK;
    ELSE
        UPDATE aliases
            SET message_count = message_count + 1, last_used_at = p_now, blocked_count = blocked_count + p_paused
            WHERE id = p_alias_id;
        SET v_at = 0;
        WHILE v_at < JSON_LENGTH(p_contact_ids) DO
            UPDATE contacts SET forwarded_count = forwarded_count + 1, last_seen_at = p_now
                WHERE id = CAST(JSON_UNQUOTE(JSON_EXTRACT(p_contact_ids, CONCAT('$[', v_at, ']'))) AS SIGNED);
            SET v_at = v_at + 1;
        END WHILE;
        INSERT INTO deliveries (inbound_message_id, recipient, alias_id, destination_id, destination_key, outcome,
                                reason, mail_from, subject, bytes_in, attempts, received_at, raw_key, created_at,
                                updated_at)
            SELECT p_message_id, p_recipient, p_alias_id, d.id, d.id, d.outcome, d.reason, p_mail_from, p_subject,
                   p_bytes_in, 1, p_received_at, p_raw_key, p_now, p_now
            FROM JSON_TABLE(p_claims, '$[*]' COLUMNS (
                id INT PATH '$[0]', outcome VARCHAR(40){UTF8} PATH '$[1]', reason VARCHAR(500){UTF8} PATH '$[2]')) AS d;
        SET v_claimed = ROW_COUNT();
        COMMIT;
    END IF;
    SELECT v_claimed AS claimed, COALESCE(v_under, FALSE) AS under_max, v_full AS full_window;
END
"""


#: What migrations.restore_routines makes again where a restored dump lacks it.
ROUTINES = {PROCEDURE: CREATE}


def _mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if _mysql():
        op.execute(f"DROP PROCEDURE IF EXISTS {PROCEDURE}")
        op.execute(CREATE)


def downgrade() -> None:
    if _mysql():
        op.execute(f"DROP PROCEDURE IF EXISTS {PROCEDURE}")

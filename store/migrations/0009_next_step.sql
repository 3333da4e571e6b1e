-- Open work per prospect (docs/decisions/0037): the step a prospect waits for and
-- when it falls due, so a step's claim is an index scan of what is due instead of a
-- join over every prospect and send of the campaign.
--
-- New prospects need nothing from their writer: the defaults make them due for step 1
-- at once (whatever inserts them: campaign import, prospects added later). Every
-- later change follows a send's state and is kept by the trigger below: a send that
-- ends 'sent' makes the next step due its delay after sent_at (or ends the sequence
-- after the last step); one that ends otherwise ends the sequence; a final send
-- opened again (an operator's retry) makes its step due again.
--
-- needs a pause: the backfill reads every send and rewrites every prospect while
-- holding both tables; sends that end meanwhile would wait for it (or, on a large
-- ledger, time out). Pause the campaigns, migrate, roll the workers, resume.

-- No send changes state between the backfill and the trigger that takes over.
LOCK TABLE sends IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE prospects
    ADD COLUMN next_step integer DEFAULT 1,
    ADD COLUMN next_due_at timestamptz DEFAULT '-infinity',
    ADD CONSTRAINT prospects_next_step_due CHECK ((next_step IS NULL) = (next_due_at IS NULL));

-- Backfill: the step after the last one sent (steps go in order: step k has a row only
-- once step k-1 was sent), unless that step's send already ended, or there is none.
WITH progress AS (
    SELECT p.id, p.campaign_id,
           coalesce(max(s.step) FILTER (WHERE s.state = 'sent'), 0) AS done
    FROM prospects p
    LEFT JOIN sends s ON s.campaign_id = p.campaign_id AND s.prospect_id = p.id
    GROUP BY p.id, p.campaign_id
), next AS (
    SELECT pr.id,
           st.step IS NOT NULL AND (cur.state IS NULL OR cur.state IN ('queued', 'sending', 'soft_bounced'))
               AS open,
           st.step,
           CASE WHEN pr.done = 0 THEN '-infinity'::timestamptz
                ELSE prev.sent_at + make_interval(secs => st.delay_seconds) END AS due
    FROM progress pr
    LEFT JOIN steps st ON st.campaign_id = pr.campaign_id AND st.step = pr.done + 1
    LEFT JOIN sends cur ON cur.campaign_id = pr.campaign_id AND cur.step = pr.done + 1
                       AND cur.prospect_id = pr.id
    LEFT JOIN sends prev ON prev.campaign_id = pr.campaign_id AND prev.step = pr.done
                        AND prev.prospect_id = pr.id
)
UPDATE prospects p
SET next_step = CASE WHEN n.open THEN n.step END,
    next_due_at = CASE WHEN n.open THEN n.due END
FROM next n
WHERE p.id = n.id AND (p.next_step, p.next_due_at) IS DISTINCT FROM
      (CASE WHEN n.open THEN n.step END, CASE WHEN n.open THEN n.due END);

-- What a claim scans: one mailbox's due prospects of one step, earliest first. Only
-- open work is in it (prospects that stopped, replied, bounced, were suppressed, or
-- finished their sequence leave it), so its size is the work left, not the campaign.
CREATE INDEX prospects_open_work ON prospects (campaign_id, next_step, mailbox_id, next_due_at, id)
    WHERE status = 'active' AND next_step IS NOT NULL;

-- When step k of a prospect may go, given that step k-1 was sent at ``sent_before``
-- (NULL for step 1): the step's delay after it. NULL when the campaign has no step k.
CREATE FUNCTION step_due_at(campaign text, k integer, sent_before timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN k = 1 THEN '-infinity'::timestamptz
                ELSE sent_before + make_interval(secs => st.delay_seconds) END
    FROM steps st WHERE st.campaign_id = campaign AND st.step = k
$$;

CREATE FUNCTION sends_keep_next_step() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    due timestamptz;
BEGIN
    IF NEW.state IN ('queued', 'sending', 'soft_bounced') THEN
        -- Opened again: the step is due again, from when it first was.
        due := coalesce(step_due_at(NEW.campaign_id, NEW.step,
                   (SELECT s.sent_at FROM sends s WHERE s.campaign_id = NEW.campaign_id
                      AND s.step = NEW.step - 1 AND s.prospect_id = NEW.prospect_id)), '-infinity');
        UPDATE prospects SET next_step = NEW.step, next_due_at = due WHERE id = NEW.prospect_id;
    ELSIF NEW.state = 'sent' THEN
        due := step_due_at(NEW.campaign_id, NEW.step + 1, NEW.sent_at);
        UPDATE prospects SET next_step = CASE WHEN due IS NOT NULL THEN NEW.step + 1 END, next_due_at = due
        WHERE id = NEW.prospect_id AND next_step = NEW.step;
    ELSE
        UPDATE prospects SET next_step = NULL, next_due_at = NULL
        WHERE id = NEW.prospect_id AND next_step = NEW.step;
    END IF;
    RETURN NULL;
END
$$;

-- Only when a send crosses between open and final: the other updates of a send
-- (attempts, DATA started) cost nothing here.
CREATE TRIGGER sends_next_step_update AFTER UPDATE OF state ON sends FOR EACH ROW
    WHEN ((OLD.state IN ('queued', 'sending', 'soft_bounced'))
          IS DISTINCT FROM (NEW.state IN ('queued', 'sending', 'soft_bounced')))
    EXECUTE FUNCTION sends_keep_next_step();
CREATE TRIGGER sends_next_step_insert AFTER INSERT ON sends FOR EACH ROW
    WHEN (NEW.state NOT IN ('queued', 'sending', 'soft_bounced'))
    EXECUTE FUNCTION sends_keep_next_step();

-- A step's delay changed on a running campaign: every prospect waiting for that step
-- falls due the new delay after its previous step was sent, whoever changed it.
CREATE FUNCTION steps_reschedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE prospects p SET next_due_at = step_due_at(p.campaign_id, p.next_step, s.sent_at)
    FROM sends s
    WHERE p.campaign_id = NEW.campaign_id AND p.next_step = NEW.step AND NEW.step > 1
      AND s.campaign_id = p.campaign_id AND s.step = NEW.step - 1 AND s.prospect_id = p.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER steps_reschedule AFTER UPDATE OF delay_seconds ON steps FOR EACH ROW
    WHEN (OLD.delay_seconds IS DISTINCT FROM NEW.delay_seconds)
    EXECUTE FUNCTION steps_reschedule();

-- Restoring the limit store after Redis lost it (decision 0029) reads the attempts of
-- the last few minutes; without this it read every attempt ever recorded.
CREATE INDEX send_attempts_started ON send_attempts (started_at);

-- The workers' gauge of sends whose outcome is unknown (telemetry/gauges.py), every
-- 15 s: a count of a rare state, which the planner otherwise may answer by reading
-- the whole ledger.
CREATE INDEX sends_unknown ON sends (campaign_id) WHERE state = 'unknown';

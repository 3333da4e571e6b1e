-- A step's delay changed on a running campaign (migration 0009): every prospect
-- waiting for that step falls due the new delay after its previous step was sent, as
-- before, but no earlier than an out-of-office reply postponed that step to (decision
-- 0053): the latest postponement of the step, unless it is 'infinity' (windows that
-- never met; the claim plans such a prospect anew). Without this, a delay change sent
-- a postponed prospect's step during the absence its reply announced.
CREATE OR REPLACE FUNCTION steps_reschedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE prospects p SET next_due_at = greatest(step_due_at(p.campaign_id, p.next_step, s.sent_at),
        (SELECT max(pp.due_after) FROM postponements pp
         WHERE pp.prospect_id = p.id AND pp.step = p.next_step AND pp.due_after < 'infinity'))
    FROM sends s
    WHERE p.campaign_id = NEW.campaign_id AND p.next_step = NEW.step AND NEW.step > 1
      AND s.campaign_id = p.campaign_id AND s.step = NEW.step - 1 AND s.prospect_id = p.id;
    RETURN NULL;
END
$$;

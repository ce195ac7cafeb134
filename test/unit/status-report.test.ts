// When the gateway writes a probe's result to the Peering status: on a verdict change, on a
// latency that moved enough to matter, and otherwise once per heartbeat.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HEARTBEAT_MS, latencyMoved, needsReport, smoothedLatency, type Reported } from '../../src/gateway/status-report.ts';

const up = { status: 'True' as const, reason: 'ProbeSucceeded' };
const down = { status: 'False' as const, reason: 'ProbeFailed' };

describe('gateway status reporting', () => {
  it('writes the first result, then only changes of the verdict', () => {
    assert.equal(needsReport(undefined, up, 0.3, 0), true);
    const last: Reported = { verdict: up, latencyMs: 0.3, atMs: 0 };
    assert.equal(needsReport(last, up, 0.3, 1000), false, 'same verdict and latency');
    assert.equal(needsReport(last, down, undefined, 1000), true, 'went down');
    assert.equal(needsReport(last, { status: 'True', reason: 'Other' }, 0.3, 1000), true, 'same status, other reason');
  });

  it('latency: a busy machine\'s jitter is not a change; a jump of at least 5 ms that doubles it is', () => {
    assert.equal(latencyMoved(0.4, 3.8), false, 'less than 5 ms apart');
    assert.equal(latencyMoved(0.3, 9), true);
    assert.equal(latencyMoved(40, 75), false, 'less than double');
    assert.equal(latencyMoved(40, 85), true);
    assert.equal(latencyMoved(85, 40), true, 'both ways');
    assert.equal(latencyMoved(undefined, 3), true, 'appeared');
    assert.equal(latencyMoved(3, undefined), true, 'vanished');
    assert.equal(latencyMoved(undefined, undefined), false);
    const last: Reported = { verdict: up, latencyMs: 0.3, atMs: 0 };
    assert.equal(needsReport(last, up, 3, 1000), false);
    assert.equal(needsReport(last, up, 6, 1000), true);
  });

  it('an unchanged status is rewritten once per heartbeat, not before', () => {
    const last: Reported = { verdict: up, latencyMs: 0.3, atMs: 1_000 };
    assert.equal(needsReport(last, up, 0.3, 1_000 + HEARTBEAT_MS - 1), false);
    assert.equal(needsReport(last, up, 0.3, 1_000 + HEARTBEAT_MS), true);
  });

  it('the reported latency is the median of the recent probes: one slow probe does not move it', () => {
    assert.equal(smoothedLatency([]), undefined);
    assert.equal(smoothedLatency([0.3, 0.2, 9, 0.25, 0.3]), 0.3);
    assert.equal(smoothedLatency([0.3, 0.2, 9, 0.25, 0.3, 9, 9, 0.3, 0.2, 0.3]), 0.3, 'nor do three in ten');
    assert.equal(smoothedLatency([1, 3]), 2);
  });
});

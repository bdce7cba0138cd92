"""The span contract: every ``shadow.*`` attribute name and enumerated value, defined once.

DESIGN.md fixes these names because users type them in SQL and the store promotes them to typed
columns. Code elsewhere imports the constants; it never spells a ``"shadow.`` literal. GenAI names
(``gen_ai.*``) follow the OpenTelemetry GenAI semantic conventions
(https://opentelemetry.io/docs/specs/semconv/gen-ai/) and are listed here for the same reason.
"""

from __future__ import annotations

from typing import Final

# --- shadow.* -------------------------------------------------------------------------------
SHADOW_EXPERIMENT: Final = "shadow.experiment"
SHADOW_ROLE: Final = "shadow.role"
SHADOW_CONFIG_ID: Final = "shadow.config.id"
SHADOW_CONFIG_PREFIX: Final = "shadow.config."  # + flattened scalar config key
SHADOW_OUTCOME: Final = "shadow.outcome"
SHADOW_OUTPUT_HASH: Final = "shadow.output.hash"
SHADOW_OUTPUT_LENGTH: Final = "shadow.output.length"
SHADOW_OUTPUT_MATCH: Final = "shadow.output.match"  # candidate only: hash equals the primary's
SHADOW_OUTPUT: Final = "shadow.output"  # content capture only
SHADOW_INPUT: Final = "shadow.input"  # content capture only
SHADOW_CANDIDATES_SCHEDULED: Final = "shadow.candidates.scheduled"  # primary only
SHADOW_CANDIDATES_DROPPED: Final = "shadow.candidates.dropped"  # primary only
SHADOW_REPLICATES_SCHEDULED: Final = "shadow.replicates.scheduled"  # primary only, when a replicate ran
SHADOW_DROP_REASONS: Final = "shadow.candidates.drop_reasons"  # primary only, comma-separated
SHADOW_SAMPLED: Final = "shadow.sampled"  # primary only
SHADOW_PRIMARY_CONFIG_ID: Final = "shadow.primary.config.id"  # candidate only
SHADOW_QUEUE_MS: Final = "shadow.queue_ms"  # candidate only: wait between primary end and start
SHADOW_LINK: Final = "shadow.link"  # on the candidate's link to its primary
SHADOW_TIME_TO_FIRST_CHUNK: Final = "shadow.time_to_first_chunk_ms"
SHADOW_RULE: Final = "shadow.rule"  # instrumentation: name of the matching rule
SHADOW_METRIC_PREFIX: Final = "shadow.metric."  # + metric name: candidate/replicate vs its primary

# scores written by `otel-shadow score` (otel_shadow.scoring): one span per scored pair and scorer,
# child of the candidate span, named "gen_ai.evaluation <scorer>"; the view shadow_scores reads them
SHADOW_SCORE_SCORER_ID: Final = "shadow.score.scorer.id"  # the scorer's config id (the cache key)
SHADOW_SCORE_SCORER_CONFIG: Final = "shadow.score.scorer.config"  # that config, as JSON
SHADOW_SCORE_MODEL: Final = "shadow.score.model"  # embedding or judge model
SHADOW_SCORE_EXPERIMENT: Final = "shadow.score.experiment"
SHADOW_SCORE_PRIMARY_CONFIG_ID: Final = "shadow.score.primary.config.id"
SHADOW_SCORE_CANDIDATE_CONFIG_ID: Final = "shadow.score.candidate.config.id"
SHADOW_SCORE_CANDIDATE_ROLE: Final = "shadow.score.candidate.role"
SHADOW_SCORE_PAIR_START: Final = "shadow.score.pair.start_time_unix_nano"  # the primary's start
SHADOW_SCORE_JUDGE_ORDER: Final = "shadow.score.judge.order"  # primary_first | candidate_first
SHADOW_SCORE_JUDGE_SWAPPED_LABEL: Final = "shadow.score.judge.swapped_label"  # bias check: other order
SHADOW_SCORE_JUDGE_CONSISTENT: Final = "shadow.score.judge.consistent"  # bias check: both orders agree
SHADOW_SCORE_INPUT_TOKENS: Final = "shadow.score.usage.input_tokens"  # what scoring this pair cost
SHADOW_SCORE_OUTPUT_TOKENS: Final = "shadow.score.usage.output_tokens"

# shadow.role values
ROLE_PRIMARY: Final = "primary"
ROLE_CANDIDATE: Final = "candidate"
ROLE_REPLICATE: Final = "replicate"
ROLE_CANARY: Final = "canary"  # a user served the candidate's answer (rules' canary block): no pair

# shadow.outcome values (a span's outcome); results add "dropped" for never-started candidates
OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_TIMEOUT: Final = "timeout"
OUTCOME_CANCELLED: Final = "cancelled"
OUTCOME_DROPPED: Final = "dropped"

# shadow.link values
LINK_PRIMARY: Final = "primary"
LINK_SCORED_PRIMARY: Final = "score.primary"  # a score span's link to the primary it compared against

# reasons a candidate is dropped instead of scheduled
DROP_SAMPLING: Final = "sampling"
DROP_TRACE_NOT_SAMPLED: Final = "trace_not_sampled"
DROP_QUEUE_FULL: Final = "queue_full"
DROP_BUDGET: Final = "budget"
DROP_DISABLED: Final = "disabled"
DROP_NESTED: Final = "nested"
DROP_SHUTDOWN: Final = "shutdown"
DROP_EXPIRED: Final = "expired"  # past the experiment's or rule's end time, duration or call count

# --- OpenTelemetry GenAI semantic conventions (gen_ai.*) ------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated name of gen_ai.provider.name, still read
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"  # the event
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
EXCEPTION_ESCAPED: Final = "exception.escaped"
SERVICE_NAME: Final = "service.name"

# --- metric instruments ----------------------------------------------------------------------
METRIC_CANDIDATE_RUNS: Final = "shadow.candidate.runs"
METRIC_CANDIDATE_DROPS: Final = "shadow.candidate.drops"
METRIC_ATTR_DROP_REASON: Final = "shadow.drop.reason"
METRIC_COMPARISON_ERRORS: Final = "shadow.metric.errors"
METRIC_ATTR_METRIC: Final = "shadow.metric.name"
# alerts (otel_shadow.rollout.watch): one point per alert raised, with shadow.experiment and
# shadow.config.id (the candidate's) beside these
METRIC_ALERTS: Final = "shadow.alerts"
METRIC_ATTR_ALERT_KIND: Final = "shadow.alert.kind"  # verdict, error_rate, p95_ms
METRIC_ATTR_ALERT_STATE: Final = "shadow.alert.state"  # the new state: a verdict, or above / below
# otel-shadow's own failures on the SDK path (core/failures.py): never raised into the caller
METRIC_INTERNAL_ERRORS: Final = "shadow.internal.errors"
EVENT_INTERNAL_ERROR: Final = "shadow.internal_error"
METRIC_ATTR_WHERE: Final = "shadow.where"  # the place that failed

package api

import "encoding/json"

// Status is the body of every error the hub's HTTP API returns, shaped like
// Kubernetes' metav1.Status.
type Status struct {
	TypeMeta `json:",inline"`
	Status   string         `json:"status"`
	Message  string         `json:"message"`
	Reason   string         `json:"reason,omitempty"`
	Code     int            `json:"code"`
	Details  *StatusDetails `json:"details,omitempty"`
}

// StatusDetails names the object an error is about and lists its causes.
type StatusDetails struct {
	Name   string        `json:"name,omitempty"`
	Kind   string        `json:"kind,omitempty"`
	Causes []StatusCause `json:"causes,omitempty"`
}

// StatusCause is one problem, with the field it is about.
type StatusCause struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Status reasons.
const (
	StatusSuccess = "Success"
	StatusFailure = "Failure"

	ReasonNotFound         = "NotFound"
	ReasonAlreadyExists    = "AlreadyExists"
	ReasonInvalid          = "Invalid"
	ReasonBadRequest       = "BadRequest"
	ReasonMethodNotAllowed = "MethodNotAllowed"
	ReasonForbidden        = "Forbidden"
	ReasonConflict         = "Conflict"
	ReasonInternalError    = "InternalError"
	ReasonTooLarge         = "RequestEntityTooLarge"
)

// List is a list of objects of one kind, as the HTTP API returns it.
type List struct {
	TypeMeta `json:",inline"`
	Metadata ListMeta          `json:"metadata"`
	Items    []json.RawMessage `json:"items"`
}

// ListMeta carries the store version the list was read at.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// ApplyResult says what an apply did to one object.
type ApplyResult struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Action is created, configured or unchanged.
	Action string `json:"action"`
}

// ApplyResponse answers POST /api/v1/apply.
type ApplyResponse struct {
	TypeMeta `json:",inline"`
	Results  []ApplyResult `json:"results"`
}

// Apply actions.
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
)

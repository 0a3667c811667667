package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
)

// The closed set of errors handlers return; errorStatus maps each to a status code.
var (
	errBadRequest = errors.New("bad request")
	errNotFound   = errors.New("not found")
	errTooLarge   = errors.New("request too large")
	errOverloaded = errors.New("inference queue full")
	errNotReady   = errors.New("not ready")
)

// apiError carries a client-facing message for one of the errors above.
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func badRequest(format string, a ...any) error {
	return &apiError{errBadRequest, fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &apiError{errNotFound, fmt.Sprintf(format, a...)}
}

// retryAfterSeconds is what a 503 asks clients to wait.
const retryAfterSeconds = 1

// Error types: the machine-readable "type" of every error body, one per kind of failure.
const (
	typeBadRequest       = "bad_request"
	typeBudgetOutOfRange = "budget_out_of_range"
	typeNotFound         = "not_found"
	typeTooLarge         = "too_large"
	typeOverloaded       = "overloaded"
	typeNotReady         = "not_ready"
	typeCanceled         = "canceled"
	typeTimeout          = "timeout"
	typeInternal         = "internal"
	typeMethodNotAllowed = "method_not_allowed"
)

// errorBody is every error response: a message for people and a type for programs.
type errorBody struct {
	Error string `json:"error"`
	Type  string `json:"type"`
}

// errorStatus maps an error to its HTTP status, type and client message. Anything outside
// the closed set is a 500 whose details stay in the log.
func errorStatus(err error) (int, string, string) {
	var (
		rangeErr *specializer.RangeError
		maxBytes *http.MaxBytesError
		api      *apiError
	)
	if errors.As(err, &api) {
		// The handler's own words, not those of the layers that wrapped it (a cache's
		// message names its internal keys).
		err = api
	}
	switch {
	case errors.As(err, &rangeErr):
		return http.StatusUnprocessableEntity, typeBudgetOutOfRange, rangeErr.Error()
	case errors.Is(err, specializer.ErrBudgetSyntax), errors.Is(err, errBadRequest),
		errors.Is(err, preprocess.ErrFormat):
		return http.StatusBadRequest, typeBadRequest, err.Error()
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, typeNotFound, err.Error()
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, typeTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBytes.Limit)
	case errors.Is(err, errTooLarge), errors.Is(err, preprocess.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, typeTooLarge, err.Error()
	case errors.Is(err, errOverloaded):
		return http.StatusServiceUnavailable, typeOverloaded, err.Error()
	case errors.Is(err, errNotReady), errors.Is(err, specializer.ErrEmptyArchive):
		return http.StatusServiceUnavailable, typeNotReady, err.Error()
	case errors.Is(err, context.Canceled):
		return 499, typeCanceled, "request canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, typeTimeout, "deadline exceeded"
	}
	return http.StatusInternalServerError, typeInternal, "internal error"
}

// handler is a gin handler that returns its error instead of writing it.
type handler func(c *gin.Context) error

// wrap adapts a handler: one place turns errors into {"error", "type"} bodies.
func (s *Server) wrap(h handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := h(c)
		if err == nil {
			return
		}
		s.writeError(c, err)
	}
}

func (s *Server) writeError(c *gin.Context, err error) {
	code, typ, msg := errorStatus(err)
	if code == http.StatusInternalServerError {
		msg = fmt.Sprintf("internal error (request id %s)", requestID(c))
		s.log.ErrorContext(c.Request.Context(), "request failed", "request_id", requestID(c), "err", err)
	}
	if code == http.StatusServiceUnavailable {
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	c.AbortWithStatusJSON(code, errorBody{Error: msg, Type: typ})
}

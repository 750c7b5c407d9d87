// fluxhealth evaluates a Flux Kustomization's healthCheckExprs entry on one object with
// Flux's own evaluator (github.com/fluxcd/pkg/runtime/cel StatusEvaluator, what
// kustomize-controller runs for .spec.healthCheckExprs), so the expressions
// docs/gitops.md shows are checked on live StagingValidations, not assumed.
//
// Usage: fluxhealth EXPRS.json < object.json
//
// EXPRS.json is one healthCheckExprs entry as JSON ({"apiVersion", "kind", "current",
// "inProgress", "failed"}; apiVersion and kind are not used here). Prints
// {"status": "InProgress|Failed|Current|Unknown", "message": ...}. An expression that
// fails to evaluate gives Unknown with the error as message - what kstatus' generic
// status reader makes of the error, and what kustomize-controller then waits on.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const maxObjectBytes = 3 << 20 // an etcd object is at most 1.5 MiB; JSON of it less than twice that

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fluxhealth: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	if len(os.Args) != 2 {
		fail(2, "usage: fluxhealth EXPRS.json < object.json")
	}
	rawExprs, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(2, "%v", err)
	}
	var check kustomize.CustomHealthCheck
	if err := json.Unmarshal(rawExprs, &check); err != nil {
		fail(2, "%s is not a healthCheckExprs entry: %v", os.Args[1], err)
	}
	evaluator, err := cel.NewStatusEvaluator(&check.HealthCheckExpressions)
	if err != nil {
		fail(1, "%v", err) // kustomize-controller refuses the Kustomization the same way
	}
	raw, err := io.ReadAll(io.LimitReader(os.Stdin, maxObjectBytes+1))
	if err != nil || len(raw) > maxObjectBytes {
		fail(2, "cannot read the object on stdin (at most %d bytes): %v", maxObjectBytes, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		fail(2, "the input is not a Kubernetes object: %v", err)
	}
	out := struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}{}
	result, err := evaluator.Evaluate(context.Background(), u)
	if err != nil {
		out.Status, out.Message = "Unknown", err.Error()
	} else {
		out.Status, out.Message = result.Status.String(), result.Message
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
}

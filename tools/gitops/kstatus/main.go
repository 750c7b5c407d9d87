// kstatus prints the status that sigs.k8s.io/cli-utils' kstatus computes for one object:
// the library Flux (kustomize-controller's wait and healthChecks) and Helm 4 (--wait)
// use to decide that a resource is ready. greenloop's integration tests run it on live
// StagingValidations, so what those tools will say is measured, not assumed.
//
// Usage: kstatus < object.json
//
// The object is JSON (as `kubectl get -o json` prints it, or one object of a watch).
// Prints {"status": "InProgress|Failed|Current|Terminating|NotFound|Unknown",
// "message": ..., "conditions": [...]} - status.Compute's Result. Exit 1 when Compute
// returns an error, 2 when the input is not an object.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const maxObjectBytes = 3 << 20 // an etcd object is at most 1.5 MiB; JSON of it less than twice that

func main() {
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < object.json")
		os.Exit(2)
	}
	raw, err := io.ReadAll(io.LimitReader(os.Stdin, maxObjectBytes+1))
	if err != nil || len(raw) > maxObjectBytes {
		fmt.Fprintf(os.Stderr, "kstatus: cannot read the object on stdin (at most %d bytes): %v\n", maxObjectBytes, err)
		os.Exit(2)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: the input is not a Kubernetes object: %v\n", err)
		os.Exit(2)
	}
	result, err := status.Compute(u)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: %v\n", err)
		os.Exit(1)
	}
	type condition struct {
		Type    string `json:"type"`
		Status  string `json:"status"`
		Reason  string `json:"reason,omitempty"`
		Message string `json:"message,omitempty"`
	}
	conditions := make([]condition, 0, len(result.Conditions))
	for _, c := range result.Conditions {
		conditions = append(conditions, condition{string(c.Type), string(c.Status), c.Reason, c.Message})
	}
	out, _ := json.Marshal(struct {
		Status     string      `json:"status"`
		Message    string      `json:"message"`
		Conditions []condition `json:"conditions"`
	}{result.Status.String(), result.Message, conditions})
	fmt.Println(string(out))
}

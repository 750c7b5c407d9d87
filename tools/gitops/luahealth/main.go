// luahealth runs an Argo CD health.lua on one object the way Argo CD's application
// controller does (argo-cd util/lua/lua.go, ExecuteHealthLua), with the gopher-lua
// version Argo CD pins, so greenloop's tests check config/argocd/health.lua against
// the interpreter that will run it, not a stand-in.
//
// Usage: luahealth SCRIPT < object.json
//
// The object is JSON (as `kubectl get -o json` prints it). The result is printed as
// Argo CD's health.HealthStatus JSON: {"status": ..., "message": ...}. A script that
// fails (syntax, runtime error, timeout, wrong return type) exits 1 with Argo CD's
// error text on stderr; Argo CD shows such a resource with that error.
//
// What is copied from Argo CD, and why it matters for a health check:
//   - the standard libraries are NOT opened (SkipOpenLibs), as in production unless
//     argocd-cm sets resource.customizations.useOpenLibs.<group_kind>: only package,
//     base, table and an os with time and date. A script that uses string.* passes
//     Argo CD's own unit tests (they open every library) and fails in the controller;
//     here it fails in the test as well;
//   - the object is a Lua table built by decodeValue: JSON numbers become Lua numbers
//     (integers as int64 first, as unstructured.Unstructured holds them), null is nil;
//   - a one-second deadline on the script (context.WithTimeout);
//   - the returned table is encoded with layeh.com/gopher-json and decoded into
//     {status, message}; an empty table is an empty status, a status outside
//     Unknown/Progressing/Healthy/Suspended/Degraded/Missing becomes Unknown with
//     "Lua returned an invalid health status", nil is an empty status.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

const (
	incorrectReturnType = "expect %s output from Lua script, not %s"
	invalidHealthStatus = "Lua returned an invalid health status"
	maxObjectBytes      = 3 << 20 // an etcd object is at most 1.5 MiB; JSON of it less than twice that
)

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

func validStatus(code string) bool {
	switch code {
	case "Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing":
		return true
	}
	return false
}

// decodeValue is Argo CD's (util/lua/lua.go), with json.Number resolved first the way
// unstructured.Unstructured resolves it (int64, else float64).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		if i, err := converted.Int64(); err == nil {
			return lua.LNumber(i)
		}
		if f, err := converted.Float64(); err == nil {
			return lua.LNumber(f)
		}
		return lua.LString(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// openSafeOs is Argo CD's OpenSafeOs: an os table with only time and date. Argo CD
// copied both functions from gopher-lua; here they are taken from gopher-lua's own os
// library, so their behaviour is the same.
func openSafeOs(l *lua.LState) {
	full := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer full.Close()
	full.Push(full.NewFunction(lua.OpenOs))
	full.Call(0, 1)
	osFull := full.Get(-1).(*lua.LTable)
	safe := l.NewTable()
	for _, name := range []string{"time", "date"} {
		if fn, ok := osFull.RawGetString(name).(*lua.LFunction); ok && fn.IsG {
			safe.RawSetString(name, l.NewFunction(fn.GFunction))
		}
	}
	l.SetGlobal(lua.OsLibName, safe)
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int { l.Push(safe); return 1 })
}

func run(script string, obj map[string]any) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	openSafeOs(l)

	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = "" // as Argo CD: the message reaches the user, not the trace
		err = apiErr
	}
	if err != nil {
		return nil, err
	}

	returned := l.Get(-1)
	switch returned.Type() {
	case lua.LTTable:
		encoded, err := luajson.Encode(returned)
		if err != nil {
			return nil, err
		}
		hs := &healthStatus{}
		if err := json.Unmarshal(encoded, hs); err != nil {
			typeError := &json.UnmarshalTypeError{Value: "array", Type: reflect.TypeFor[*healthStatus]()}
			if errors.As(err, &typeError) {
				return &healthStatus{}, nil
			}
			return nil, err
		}
		if !validStatus(hs.Status) {
			return &healthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
		}
		return hs, nil
	case lua.LTNil:
		return &healthStatus{}, nil
	}
	return nil, fmt.Errorf(incorrectReturnType, "table", returned.Type().String())
}

func main() {
	if len(os.Args) != 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: luahealth SCRIPT < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "luahealth: %v\n", err)
		os.Exit(2)
	}
	raw, err := io.ReadAll(io.LimitReader(os.Stdin, maxObjectBytes+1))
	if err != nil || len(raw) > maxObjectBytes {
		fmt.Fprintf(os.Stderr, "luahealth: cannot read the object on stdin (at most %d bytes): %v\n", maxObjectBytes, err)
		os.Exit(2)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		fmt.Fprintf(os.Stderr, "luahealth: the object on stdin is not a JSON object: %v\n", err)
		os.Exit(2)
	}
	hs, err := run(string(script), obj)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(hs)
	fmt.Println(string(out))
}

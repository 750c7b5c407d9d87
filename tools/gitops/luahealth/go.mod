// Runs config/argocd/health.lua with the gopher-lua that Argo CD pins (argo-cd go.mod:
// github.com/yuin/gopher-lua v1.1.2, layeh.com/gopher-json 97fed8db8427). Built by
// tools/gitops/build into ~/.cache/greenloop/gitops/. Not part of the operator.
module greenloop.dev/tools/gitops/luahealth

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
)

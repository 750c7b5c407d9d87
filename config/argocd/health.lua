-- Argo CD health check for greenloop.dev/StagingValidation (docs/gitops.md).
-- Install as argocd-cm's resource.customizations.health.greenloop.dev_StagingValidation.
--
-- Reads what greenloop writes (docs/design.md section 2): status.phase, status.observedGeneration
-- and the kstatus conditions Ready / Reconciling / Stalled, each with a reason and message.
-- The status is in kstatus format (sigs.k8s.io/cli-utils pkg/kstatus), as Argo CD asks
-- health checks to say.
--   no status yet                        -> Progressing (greenloop has not picked it up)
--   observedGeneration < generation      -> Progressing (a spec edit not yet observed)
--   Passed                               -> Healthy
--   Pending / Testing / Redeploying      -> Progressing
--   WaitingApproval                      -> Suspended (a person must approve the redeploy)
--   Stalled                              -> Degraded, with the Stalled reason and message
--   any other phase                      -> from the conditions, else Unknown
-- Lua 5.1 as Argo CD runs it (gopher-lua without the string library): only base and
-- table functions and the .. operator. Checked with gopher-lua itself against objects
-- greenloop wrote: config/argocd/health_test.yaml, tests/e2e/test_argocd_health.py.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for greenloop: no status yet"
  return hs
end

local generation = tonumber(obj.metadata.generation)
local observed = tonumber(status.observedGeneration)
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for greenloop to observe generation " .. generation
  if observed ~= nil then
    hs.message = hs.message .. " (status is of generation " .. observed .. ")"
  end
  return hs
end

-- greenloop's condition messages already name the iteration ("iteration 2: ...").
local phase = status.phase

if phase == "Passed" then
  hs.status = "Healthy"
  hs.message = text(condition(status, "Ready"), "Passed")
  return hs
end
if phase == "Stalled" then
  local stalled = condition(status, "Stalled")
  hs.status = "Degraded"
  hs.message = text(stalled, "Stalled")
  if stalled ~= nil and stalled.reason ~= nil and stalled.reason ~= "" then
    hs.message = stalled.reason .. ": " .. hs.message
  end
  return hs
end
if phase == "WaitingApproval" then
  hs.status = "Suspended"
  hs.message = "WaitingApproval: " .. text(condition(status, "Reconciling"), "a redeploy waits for approval")
  return hs
end
if phase == "Pending" or phase == "Testing" or phase == "Redeploying" then
  hs.status = "Progressing"
  hs.message = phase .. ": " .. text(condition(status, "Reconciling"), "in progress")
  return hs
end

-- A phase this check does not know (a newer greenloop): the kstatus conditions decide.
local stalled = condition(status, "Stalled")
local reconciling = condition(status, "Reconciling")
local ready = condition(status, "Ready")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled, phase)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = text(reconciling, phase)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, phase)
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. phase
end
return hs

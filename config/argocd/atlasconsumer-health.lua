-- Argo CD health check for events.atlas.io/AtlasConsumer.
-- Install it in the argocd-cm ConfigMap (see config/argocd/README.md) under
--   resource.customizations.health.events.atlas.io_AtlasConsumer
-- It reads the same conditions kstatus (Flux, kpt) reads: the status must be for the
-- current generation; Stalled/Degraded is Degraded; Ready is Healthy (Suspended when
-- spec.suspend or the pause annotation is set); otherwise Progressing.
local hs = { status = "Progressing", message = "Waiting for the operator to report a status" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local function isTrue(t)
  return conditions[t] ~= nil and conditions[t].status == "True"
end
local function message(t)
  local c = conditions[t]
  if c == nil or c.message == nil then
    return t
  end
  return c.message
end
if isTrue("ReconciliationPaused") then
  return { status = "Suspended", message = message("ReconciliationPaused") }
end
if isTrue("Stalled") then
  return { status = "Degraded", message = message("Stalled") }
end
if isTrue("Degraded") then
  return { status = "Degraded", message = message("Degraded") }
end
if isTrue("Ready") then
  if obj.spec ~= nil and obj.spec.suspend == true then
    return { status = "Suspended", message = message("Ready") }
  end
  return { status = "Healthy", message = message("Ready") }
end
if conditions["Ready"] ~= nil then
  hs.message = message("Ready")
end
return hs

-- Argo CD health of a db.alicloud.dev/v1alpha1 object written by alicloud-db-operator.
--
-- The operator follows the kstatus conventions: status.observedGeneration, and the conditions
-- Ready, Reconciling and Stalled, each with its own observedGeneration. A condition written for
-- an older generation says nothing about the current spec and is ignored.
--
-- Argo CD runs argocd-cm scripts with only the base, table and package libraries and a safe
-- os (time, date): no string, math, io or coroutine, so no string.* and no ("x"):method().
local hs = {}
local metadata = obj.metadata or {}
local generation = metadata.generation
local status = obj.status or {}

-- The conditions written for the current generation, by type.
local current = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type ~= nil and (generation == nil or condition.observedGeneration == nil
        or condition.observedGeneration == generation) then
      current[condition.type] = condition
    end
  end
end

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

-- "Reason: message", or the reason alone when there is no message.
local function describe(condition)
  local reason = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    return reason .. ": " .. condition.message
  end
  return reason
end

-- The health to return.
local function health(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local observe = "the object"
if generation ~= nil then
  observe = "generation " .. generation
end

if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted"
  -- What the operator reported since the deletion started (a cleanup that is retrying or stuck).
  if is_true(current.Stalled) then
    hs.message = "being deleted: " .. describe(current.Stalled)
  elseif is_true(current.Reconciling) then
    hs.message = "being deleted: " .. describe(current.Reconciling)
  end
  return hs
end

if metadata.annotations ~= nil and metadata.annotations["db.alicloud.dev/paused"] == "true" then
  return health("Suspended", "paused by annotation db.alicloud.dev/paused: the operator makes no cloud calls for it")
end

if status.observedGeneration == nil or (generation ~= nil and status.observedGeneration ~= generation) then
  return health("Progressing", "waiting for the operator to observe " .. observe)
end

if is_true(current.Stalled) then
  return health("Degraded", describe(current.Stalled))
end

if is_true(current.Reconciling) then
  return health("Progressing", describe(current.Reconciling))
end

if current.Ready == nil then
  return health("Progressing", "waiting for the operator to report Ready for " .. observe)
end

if is_true(current.Ready) then
  hs.status = "Healthy"
else
  -- Ready False or Unknown with neither Reconciling nor Stalled: kstatus calls it InProgress.
  hs.status = "Progressing"
end
hs.message = describe(current.Ready)
return hs

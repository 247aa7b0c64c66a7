-- The tutorial's model as DESIGN.md writes it, shared by the specs: Model (784-64-32-10,
-- softmax output) nested in myModel.layers. Returns Model, myModel.
local ml = require "moonlight"
local nn = ml.nn

local Model = nn.Module:extend("Model")
function Model:init()
  self.flatten = nn.Flatten(); self.linear1 = nn.Linear(784, 64); self.relu1 = nn.ReLU()
  self.linear2 = nn.Linear(64, 32); self.relu2 = nn.ReLU(); self.linear3 = nn.Linear(32, 10)
  self.softmax = nn.Softmax(2)
end
function Model:forward(x)
  x = self.relu1(self.linear1(self.flatten(x)))
  x = self.relu2(self.linear2(x))
  return self.softmax(self.linear3(x))
end
local myModel = nn.Module:extend("myModel")
function myModel:init() self.layers = Model() end
function myModel:forward(x) return self.layers(x) end

return {Model = Model, myModel = myModel}

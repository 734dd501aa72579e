-- The python3 that can import torch, or nil: Debian's /usr/bin/python3 has
-- python3-torch; a pyenv python3 first on PATH may not. Specs that compare
-- with PyTorch run when this returns a path and stay pending otherwise.
--   local torch_python = dofile(here .. "helpers/torch_python.lua")
--   local py = torch_python()                   -- or torch_python("torch, torchaudio")
return function(modules)
  for _, py in ipairs { "/usr/bin/python3", "python3" } do
    local ok = os.execute(py .. " -c 'import " .. (modules or "torch") .. "' >/dev/null 2>&1")
    if ok == true or ok == 0 then return py end
  end
end

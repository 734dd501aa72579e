-- The python3 that can import torch (the PyTorch reference of the parity specs), or nil:
-- Debian's /usr/bin/python3 has python3-torch; a pyenv python3 first on PATH may not.
-- Specs mark their PyTorch comparisons pending when this is nil.
return function()
  for _, py in ipairs { "/usr/bin/python3", "python3" } do
    local ok = os.execute(py .. " -c 'import torch' >/dev/null 2>&1")
    if ok == true or ok == 0 then return py end
  end
end

# Makes testdata/cmyk.jpg: a 16x16 CMYK JPEG with four flat quadrants
# (red, green / blue, white), since Go's encoder cannot write CMYK.
# Run with: /usr/bin/python3 testdata/gen_cmyk.py
from PIL import Image
im = Image.new("RGB", (16, 16))
for y in range(16):
    for x in range(16):
        im.putpixel((x, y), [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)][(y // 8) * 2 + x // 8])
im.convert("CMYK").save("testdata/cmyk.jpg", quality=95)

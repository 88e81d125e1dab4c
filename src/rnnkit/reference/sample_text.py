"""A small built-in text, so the reference trainer runs with no download and no file.

Written for rnnkit. It is short (a few thousand characters), so a model learns its spelling and
common words within minutes, and then starts to memorise it.
"""

SAMPLE_TEXT = """\
The river begins as a thin line of water between two stones high on the hill. In the morning the
water is cold and clear, and it runs quickly over the gravel, past the roots of the old trees, and
down into the valley where the village stands. The people of the village say that the river has
always been there, and that it will always be there, long after the last of them has gone.

In the spring the snow melts on the hill, and the river grows wide and brown. It carries branches
and leaves and sometimes a whole tree, turning slowly in the current. The children stand on the
bridge and watch the water rush under their feet. Their mothers call them home, but they stay a
little longer, because the sound of the river is loud and the light on the water is bright.

In the summer the river is low and slow. The fish rest in the deep pools under the bank, and the
old men sit in the shade with their lines in the water. They talk about the weather, about the
price of bread, about the harvest that is coming. Sometimes they catch a fish, and sometimes they
do not, and it does not seem to matter very much to them either way.

In the autumn the leaves fall on the water and float away to the sea. The evenings are long and
quiet, and the mist lies on the fields until the middle of the morning. The farmers bring in the
last of the apples and the last of the corn, and the smoke from their fires rises straight into
the still air. The river runs on, carrying the leaves, and nobody stops to watch it any more.

In the winter the river freezes at the edges, and the ice makes a sound like a bell when the
children throw stones onto it. The nights are cold and the stars are very clear. In the houses the
families sit close to the fire and tell the old stories: the story of the flood, the story of the
miller and his daughter, the story of the stranger who came over the hill one night and was never
seen again. And under the ice, in the dark, the river keeps moving, slowly, towards the sea.

When the spring comes again the ice breaks, and the water is loud once more. The children run down
to the bridge, and the old men mend their lines, and the farmers look at the sky and say that it
will be a good year. The river does not answer them. It only runs, as it always has, from the stones
on the hill to the wide grey sea.
"""

// A strict XML well-formedness check for what our reports write (SVG): one root element,
// balanced and properly nested tags, quoted and unique attributes, only the predefined or
// numeric entities. It throws on the first violation with its offset, and returns the tree
// so tests can look for elements. (No DTDs: our files have none, so any is an error.)

export interface XmlElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  text: string;
}

const NAME = /^[A-Za-z_:][\w:.-]*$/;
const ATTR = /\s+([A-Za-z_:][\w:.-]*)\s*=\s*("[^"<]*"|'[^'<]*')/y;
const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;

function checkText(text: string, at: number): void {
  for (let i = text.indexOf('&'); i !== -1; i = text.indexOf('&', i + 1)) {
    ENTITY.lastIndex = i;
    if (!ENTITY.test(text)) throw new Error(`bad entity or bare & at offset ${at + i}`);
  }
  if (text.includes(']]>')) throw new Error(`"]]>" in text at offset ${at}`);
}

export function parseXml(doc: string): XmlElement {
  let pos = 0;
  if (doc.startsWith('<?xml')) {
    const end = doc.indexOf('?>');
    if (end === -1) throw new Error('unterminated XML declaration');
    pos = end + 2;
  }
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (pos < doc.length) {
    const lt = doc.indexOf('<', pos);
    const text = doc.slice(pos, lt === -1 ? doc.length : lt);
    if (text) {
      checkText(text, pos);
      if (stack.length) stack[stack.length - 1]!.text += text;
      else if (text.trim()) throw new Error(`text outside the root element at offset ${pos}`);
    }
    if (lt === -1) break;
    if (doc.startsWith('<!--', lt)) {
      const end = doc.indexOf('-->', lt + 4);
      if (end === -1) throw new Error(`unterminated comment at offset ${lt}`);
      pos = end + 3;
      continue;
    }
    if (doc.startsWith('<![CDATA[', lt)) {
      const end = doc.indexOf(']]>', lt);
      if (end === -1 || !stack.length) throw new Error(`bad CDATA section at offset ${lt}`);
      pos = end + 3;
      continue;
    }
    if (doc.startsWith('<?', lt) || doc.startsWith('<!', lt)) throw new Error(`processing instruction or declaration at offset ${lt}`);
    const gt = doc.indexOf('>', lt);
    if (gt === -1) throw new Error(`unterminated tag at offset ${lt}`);
    const tag = doc.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`</${name}> at offset ${lt} closes ${open ? `<${open.name}>` : 'nothing'}`);
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const nameEnd = body.search(/\s|$/);
      const name = body.slice(0, nameEnd);
      if (!NAME.test(name)) throw new Error(`bad element name "${name}" at offset ${lt}`);
      const attrs: Record<string, string> = {};
      let i = nameEnd;
      for (;;) {
        ATTR.lastIndex = i;
        const m = ATTR.exec(body);
        if (!m) break;
        if (m[1]! in attrs) throw new Error(`duplicate attribute ${m[1]} at offset ${lt}`);
        const value = m[2]!.slice(1, -1);
        checkText(value, lt);
        attrs[m[1]!] = value;
        i = ATTR.lastIndex;
      }
      if (body.slice(i).trim()) throw new Error(`malformed attributes in <${name}> at offset ${lt}: "${body.slice(i).trim().slice(0, 40)}"`);
      const el: XmlElement = { name, attrs, children: [], text: '' };
      if (stack.length) stack[stack.length - 1]!.children.push(el);
      else if (root) throw new Error(`second root element <${name}> at offset ${lt}`);
      else root = el;
      if (!selfClosing) stack.push(el);
    }
    pos = gt + 1;
  }
  if (stack.length) throw new Error(`<${stack[stack.length - 1]!.name}> never closed`);
  if (!root) throw new Error('no root element');
  return root;
}

/** Every element of the tree, depth first. */
export function allElements(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap(allElements)];
}

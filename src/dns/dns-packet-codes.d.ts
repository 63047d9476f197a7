// dns-packet's tables of type and class names (CommonJS, no declarations of their own).
declare module 'dns-packet/types.js' {
  const types: { toString(type: number): string };
  export default types;
}
declare module 'dns-packet/classes.js' {
  const classes: { toString(klass: number): string };
  export default classes;
}

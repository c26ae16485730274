/** SVG files are bundled as strings (JupyterLab's builder does this). */
declare module '*.svg' {
  const value: string;
  export default value;
}

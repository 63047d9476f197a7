export { compileFrontends } from './frontends.js';

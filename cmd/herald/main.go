package main
import (_ "github.com/glebarez/sqlite"; _ "gorm.io/driver/postgres"; _ "github.com/pressly/goose/v3"; _ "github.com/labstack/echo/v4"; _ "github.com/alexedwards/scs/v2"; _ "github.com/a-h/templ")
func main(){}
